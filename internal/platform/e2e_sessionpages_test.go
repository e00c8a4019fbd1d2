package platform_test

import (
	"fmt"
	"strings"
	"testing"
)

// sessionOf returns the page URL of session sid of agent id.
func (a *api) sessionURL(id, sid string) string {
	a.t.Helper()
	for _, s := range maps(a.get("/api/v1/agents/" + id)["sessions"]) {
		if s["id"] == sid {
			return s["url"].(string)
		}
	}
	a.t.Fatalf("agent %s has no session %s", id, sid)
	return ""
}

// pendingIn polls a session's pending permissions until one is there.
func (s *sessionAPI) pendingPermission() map[string]any {
	s.t.Helper()
	var items []map[string]any
	eventually(s.t, "a pending permission on the session page", func() bool {
		items = maps(s.do("GET", "/api/permissions", nil)["permissions"])
		return len(items) > 0
	})
	return items[0]
}

// lastTool is the state of the last tool part of a session's history.
func lastTool(msgs []map[string]any) map[string]any {
	var st map[string]any
	for _, m := range msgs {
		info, _ := m["info"].(map[string]any)
		for _, p := range maps(info["parts"]) {
			if p["type"] == "tool" {
				st, _ = p["state"].(map[string]any)
			}
		}
	}
	return st
}

// TestSessionPageAlwaysIsSessionScoped: an "always" from a session page
// holds for that session only; the organization's "always" holds for the
// whole agent. On the code before this test, a page's "always" was
// remembered agent-wide, so session B ran A's approved command unasked.
func TestSessionPageAlwaysIsSessionScoped(t *testing.T) {
	r := newCodingRig(t, false, nil)
	c := r.client("acme")
	id, created := c.create(map[string]any{"name": "a", "initialPrompt": "hello"})
	c.waitIdle(id)
	sidA := maps(created["sessions"])[0]["id"].(string)
	a := newSessionAPI(t, maps(created["sessions"])[0]["url"].(string))
	sidB := c.post("/api/v1/agents/"+id+"/messages", map[string]any{"message": "hello"})["sessionId"].(string)
	c.waitIdle(id)

	// A's page approves a command for always.
	a.do("POST", "/api/messages", map[string]any{"message": `run bash {"command":"echo page-always"}`})
	p := a.pendingPermission()
	if got := a.do("POST", "/api/permissions/"+p["id"].(string), map[string]any{"reply": "always"}); got["replied"] != true {
		t.Fatalf("reply: %v", got)
	}
	c.waitIdle(id)
	// In A it is remembered...
	a.do("POST", "/api/messages", map[string]any{"message": `run bash {"command":"echo page-always"}`})
	c.waitIdle(id)
	if st := lastTool(c.history(id, sidA)); st["status"] != "completed" || !strings.Contains(st["output"].(string), "page-always") {
		t.Fatalf("A's remembered command: %v", st)
	}
	// ...and in B it still asks.
	c.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sidB, "message": `run bash {"command":"echo page-always"}`})
	perm := c.pendingOne("/api/v1/agents/"+id+"/permissions", "permissions")
	if perm["sessionID"] != sidB {
		t.Fatalf("pending: %v", perm)
	}
	// The organization's always is the agent's: B approves, A then runs
	// the command unasked.
	c.post("/api/v1/agents/"+id+"/permissions/"+perm["id"].(string)+"/reply", map[string]any{"reply": "always"})
	c.waitIdle(id)
	a.do("POST", "/api/messages", map[string]any{"message": `run bash {"command":"echo page-always && echo org"}`})
	p = a.pendingPermission() // a new command asks
	a.do("POST", "/api/permissions/"+p["id"].(string), map[string]any{"reply": "reject"})
	c.waitIdle(id)
	c.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sidB, "message": `run bash {"command":"echo org-always"}`})
	perm = c.pendingOne("/api/v1/agents/"+id+"/permissions", "permissions")
	c.post("/api/v1/agents/"+id+"/permissions/"+perm["id"].(string)+"/reply", map[string]any{"reply": "always"})
	c.waitIdle(id)
	a.do("POST", "/api/messages", map[string]any{"message": `run bash {"command":"echo org-always"}`})
	c.waitIdle(id)
	if st := lastTool(c.history(id, sidA)); st["status"] != "completed" || !strings.Contains(st["output"].(string), "org-always") {
		t.Fatalf("the organization's always did not reach A: %v", st)
	}
	// A page cannot widen its own reply.
	a.do("POST", "/api/messages", map[string]any{"message": `run bash {"command":"echo widened"}`})
	p = a.pendingPermission()
	a.raw("POST", "/api/permissions/"+p["id"].(string), map[string]any{"reply": "always", "scope": "agent"}).WantError(t, 400, "scope")
	a.do("POST", "/api/permissions/"+p["id"].(string), map[string]any{"reply": "reject"})
	c.waitIdle(id)
}

// TestSessionPermissionsOff: an organization that does not trust its
// session pages with the agent's tools turns their permission replies off;
// the pages still talk and answer questions. On the code before this test
// the field did not exist (create answered 400 unknown field), so a page
// could always approve bash.
func TestSessionPermissionsOff(t *testing.T) {
	r := newCodingRig(t, false, nil)
	c := r.client("acme")
	id, created := c.create(map[string]any{"name": "locked", "initialPrompt": "hello", "sessionPermissions": false})
	c.waitIdle(id)
	if got := c.get("/api/v1/agents/" + id); got["sessionPermissions"] != false {
		t.Fatalf("agent: %v", got)
	}
	page := newSessionAPI(t, maps(created["sessions"])[0]["url"].(string))
	if st := page.do("GET", "/api/status", nil); st["sessionPermissions"] != false {
		t.Fatalf("page status: %v", st)
	}
	page.do("POST", "/api/messages", map[string]any{"message": `run bash {"command":"echo locked"}`})
	p := page.pendingPermission() // the page sees it, waiting for the organization
	page.raw("POST", "/api/permissions/"+p["id"].(string), map[string]any{"reply": "once"}).WantError(t, 403, "organization")
	page.raw("POST", "/api/permissions/"+p["id"].(string)+"/reply", map[string]any{"reply": "always"}).WantError(t, 403, "organization")
	c.post("/api/v1/agents/"+id+"/permissions/"+p["id"].(string)+"/reply", map[string]any{"reply": "once"})
	c.waitIdle(id)
	sid := maps(created["sessions"])[0]["id"].(string)
	if st := lastTool(c.history(id, sid)); st["status"] != "completed" {
		t.Fatalf("after the organization's reply: %v", st)
	}
	// Questions are still the page's to answer.
	page.do("POST", "/api/messages", map[string]any{"message": `use question {"questions":[{"question":"Which?","options":[{"label":"A"},{"label":"B"}]}]}`})
	var q map[string]any
	eventually(t, "a question", func() bool {
		qs := maps(page.do("GET", "/api/questions", nil)["questions"])
		if len(qs) > 0 {
			q = qs[0]
		}
		return q != nil
	})
	page.do("POST", "/api/questions/"+q["id"].(string), map[string]any{"answers": [][]string{{"A"}}})
	c.waitIdle(id)

	// The organization turns page replies on again.
	if got := c.Do(t, "PATCH", "/api/v1/agents/"+id, map[string]any{"sessionPermissions": true}).Want(t, 200); got["sessionPermissions"] != true {
		t.Fatalf("patch: %v", got)
	}
	c.Do(t, "PATCH", "/api/v1/agents/"+id, map[string]any{}).WantError(t, 400, "")
	c.Do(t, "PATCH", "/api/v1/agents/"+id, map[string]any{"sessionPermissions": "yes"}).WantError(t, 400, "sessionPermissions")
	page.do("POST", "/api/messages", map[string]any{"message": `run bash {"command":"echo unlocked"}`})
	p = page.pendingPermission()
	page.do("POST", "/api/permissions/"+p["id"].(string), map[string]any{"reply": "once"})
	c.waitIdle(id)
	// Another organization's token cannot change it.
	r.client("other").Do(t, "PATCH", "/api/v1/agents/"+id, map[string]any{"sessionPermissions": false}).WantError(t, 404, "")
}

// TestSessionUploadsArePrivate: a session page's uploads land in a folder
// of its session; another session's tools reach them only with an
// approval the organization gives, never a page. On the code before this
// test every upload landed in the shared uploads/, where every session's
// bash could read it.
func TestSessionUploadsArePrivate(t *testing.T) {
	r := newCodingRig(t, false, nil)
	c := r.client("acme")
	id, created := c.create(map[string]any{"name": "a", "initialPrompt": "hello"})
	c.waitIdle(id)
	sidA := maps(created["sessions"])[0]["id"].(string)
	a := newSessionAPI(t, maps(created["sessions"])[0]["url"].(string))
	sidB := c.post("/api/v1/agents/"+id+"/messages", map[string]any{"message": "hello"})["sessionId"].(string)
	c.waitIdle(id)
	b := newSessionAPI(t, c.sessionURL(id, sidB))

	up := upload(t, r.env.URL, strings.TrimPrefix(a.base, r.env.URL)+"/api/files", "secret.csv", 64, map[string]string{"X-Session-Capability": a.cap}).Want(t, 200)
	path := up["path"].(string)
	if !strings.HasSuffix(path, "/uploads/sessions/"+sidA+"/secret.csv") {
		t.Fatalf("a page's upload landed at %s", path)
	}
	shared := upload(t, r.env.URL, "/api/v1/agents/"+id+"/files", "shared.csv", 64, map[string]string{"Authorization": "Bearer " + c.Token}).Want(t, 200)
	if !strings.HasSuffix(shared["path"].(string), "/uploads/shared.csv") {
		t.Fatalf("the organization's upload landed at %v", shared["path"])
	}
	rel := "uploads/sessions/" + sidA + "/secret.csv"

	// A reads its own upload freely.
	a.do("POST", "/api/messages", map[string]any{"message": `use read {"path":"` + rel + `"}`})
	c.waitIdle(id)
	if st := lastTool(c.history(id, sidA)); st["status"] != "completed" || !strings.Contains(st["output"].(string), "a,b,c") {
		t.Fatalf("A reading its own upload: %v", st)
	}
	// B's bash does not see it, approved or not.
	b.do("POST", "/api/messages", map[string]any{"message": `run bash {"command":"cat /workspace/` + rel + `; ls /workspace/uploads/sessions; cat /workspace/uploads/shared.csv | head -1"}`})
	p := b.pendingPermission()
	b.do("POST", "/api/permissions/"+p["id"].(string), map[string]any{"reply": "once"})
	c.waitIdle(id)
	st := lastTool(c.history(id, sidB))
	out := fmt.Sprint(st["output"], st["error"])
	// Not A's file (its content), nor A's folder in the listing; the
	// shared upload's first line is there once.
	if strings.Count(out, "a,b,c") != 1 || strings.Contains(out, "\n"+sidA+"\n") || !strings.Contains(out, "No such file") {
		t.Fatalf("B's bash on A's upload: %v", st)
	}
	// B's read of it waits for the organization: B's page cannot approve.
	b.do("POST", "/api/messages", map[string]any{"message": `use read {"path":"` + rel + `"}`})
	p = b.pendingPermission()
	if md, _ := p["metadata"].(map[string]any); md["organization"] != true {
		t.Fatalf("the permission does not say the organization must approve: %v", p)
	}
	b.raw("POST", "/api/permissions/"+p["id"].(string), map[string]any{"reply": "once"}).WantError(t, 403, "organization")
	c.post("/api/v1/agents/"+id+"/permissions/"+p["id"].(string)+"/reply", map[string]any{"reply": "once"})
	c.waitIdle(id)
	if st := lastTool(c.history(id, sidB)); st["status"] != "completed" || !strings.Contains(st["output"].(string), "a,b,c") {
		t.Fatalf("B reading A's upload with the organization's approval: %v", st)
	}
}
