package platform_test

import (
	"strings"
	"testing"
)

// TestSeedFlows runs the seed's "Quick Start with cURL" and "Full
// Integration Example" against the real coding runtime with offline/demo:
// create with an initial prompt, poll busy, follow up, read the history
// (one session and all), usage, a permission approved once and then
// always, a question answered, scoped secrets reaching the runtime's
// shell, stop/start and restart keeping the history.
func TestSeedFlows(t *testing.T) {
	backends(t, func(t *testing.T, pg bool) {
		r := newCodingRig(t, pg, nil)
		c := r.client("acme")

		// Scopes and secrets: the agent in "production" sees only its
		// scope's secret.
		sc := c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "production", "description": "Production environment"}).Want(t, 201)
		c.Do(t, "PUT", "/api/v1/scopes/"+sc["id"].(string)+"/secrets", map[string]any{"key": "DEPLOY_KEY", "value": "sk-scoped-42"}).Want(t, 201)
		c.Do(t, "PUT", "/api/v1/secrets", map[string]any{"key": "ORG_KEY", "value": "sk-org-7"}).Want(t, 201)

		// 1. Create with an initial prompt.
		id, created := c.create(map[string]any{"name": "build-agent", "scope": "production",
			"initialPrompt": "Set up a Node.js Express project with TypeScript", "model": "offline/demo"})
		sessions := maps(created["sessions"])
		if len(sessions) != 1 || created["scopeId"] != sc["id"] || !strings.HasPrefix(created["url"].(string), r.env.URL+"/a/"+id) {
			t.Fatalf("create = %v", created)
		}
		sid := sessions[0]["id"].(string)
		if mid, _ := sessions[0]["messageId"].(string); !strings.HasPrefix(sid, "ses_") || !strings.HasPrefix(mid, "msg_") ||
			!strings.Contains(sessions[0]["url"].(string), "/a/"+id+"/session/"+sid+"?cap=") {
			t.Fatalf("session = %v", sessions[0])
		}

		// 2. Wait for the initial prompt to finish.
		st := c.waitIdle(id)
		if st["status"] != "RUNNING" || st["errorMsg"] != nil || len(maps(st["sessions"])) != 1 {
			t.Fatalf("status = %v", st)
		}
		if s := maps(st["sessions"])[0]; s["id"] != sid || !strings.Contains(s["url"].(string), "?cap=") {
			t.Fatalf("status session = %v", s)
		}

		// 3. A follow-up to the same session.
		sent := c.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sid, "message": "Now add user authentication with JWT"})
		if sent["sessionId"] != sid || sent["sent"] != true {
			t.Fatalf("send = %v", sent)
		}
		c.waitIdle(id)

		// 4. The full conversation.
		msgs := c.history(id, sid)
		if len(msgs) < 4 || role(msgs[0]) != "user" || text(msgs[0]) != "Set up a Node.js Express project with TypeScript" || msgs[0]["id"] != sessions[0]["messageId"] {
			t.Fatalf("history = %v", msgs)
		}
		var users int
		for _, m := range msgs {
			if role(m) == "user" {
				users++
			}
		}
		if users != 2 || role(msgs[len(msgs)-1]) != "assistant" {
			t.Fatalf("history has %d user messages, last %s: %v", users, role(msgs[len(msgs)-1]), msgs)
		}
		all := c.get("/api/v1/agents/" + id + "/messages")
		if ss := maps(all["sessions"]); len(ss) != 1 || ss[0]["sessionId"] != sid || len(maps(ss[0]["messages"])) != len(msgs) {
			t.Fatalf("all messages = %v", all)
		}
		// A message without a session opens a new one.
		other := c.post("/api/v1/agents/"+id+"/messages", map[string]any{"message": "hello"})
		if other["sessionId"] == sid || other["sent"] != true {
			t.Fatalf("new session send = %v", other)
		}
		c.waitIdle(id)
		usage := c.get("/api/v1/agents/" + id + "/usage")
		tokens, _ := usage["totalTokens"].(map[string]any)
		if usage["agentId"] != id || len(maps(usage["sessions"])) != 2 || tokens == nil || tokens["total"].(float64) <= 0 {
			t.Fatalf("usage = %v", usage)
		}

		// A permission: bash asks; approved once, then always.
		c.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sid, "message": `run bash {"command":"echo scoped=$DEPLOY_KEY org=$ORG_KEY"}`})
		perm := c.pendingOne("/api/v1/agents/"+id+"/permissions", "permissions")
		if perm["permission"] != "bash" || perm["sessionID"] != sid || perm["always"] != false || !strings.HasPrefix(perm["id"].(string), "perm_") {
			t.Fatalf("permission = %v", perm)
		}
		if got := c.post("/api/v1/agents/"+id+"/permissions/"+perm["id"].(string)+"/reply", map[string]any{"reply": "once"}); got["replied"] != true || got["reply"] != "once" {
			t.Fatalf("reply = %v", got)
		}
		c.waitIdle(id)
		msgs = c.history(id, sid)
		var out string
		for _, m := range msgs {
			out += text(m)
		}
		if !strings.Contains(out, "scoped=sk-scoped-42 org=") || strings.Contains(out, "sk-org-7") {
			t.Fatalf("the bash output must show the scope's secret and not the org's: %s", out)
		}
		// Replying again is 409 (no longer pending), an unknown id 404.
		c.Do(t, "POST", "/api/v1/agents/"+id+"/permissions/"+perm["id"].(string)+"/reply", map[string]any{"reply": "once"}).WantError(t, 409, "")
		c.Do(t, "POST", "/api/v1/agents/"+id+"/permissions/perm_nope/reply", map[string]any{"reply": "once"}).WantError(t, 404, "")

		c.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sid, "message": `run bash {"command":"echo always-1"}`})
		perm = c.pendingOne("/api/v1/agents/"+id+"/permissions", "permissions")
		c.post("/api/v1/agents/"+id+"/permissions/"+perm["id"].(string)+"/reply", map[string]any{"reply": "always"})
		c.waitIdle(id)
		c.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sid, "message": `run bash {"command":"echo always-1"}`})
		c.waitIdle(id) // no permission asked: it would stay busy
		if p := maps(c.get("/api/v1/agents/" + id + "/permissions")["permissions"]); len(p) != 0 {
			t.Fatalf("an always-allowed command asked again: %v", p)
		}

		// A question, answered.
		c.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sid, "message": `use question {"questions":[{"question":"How would you like me to implement this?","header":"Approach","options":[{"label":"Simple","description":"Quick"},{"label":"Full","description":"Complete"}],"multiSelect":false}]}`})
		q := c.pendingOne("/api/v1/agents/"+id+"/questions", "questions")
		qs := maps(q["questions"])
		if len(qs) != 1 || qs[0]["question"] != "How would you like me to implement this?" || len(maps(qs[0]["options"])) != 2 {
			t.Fatalf("question = %v", q)
		}
		c.Do(t, "POST", "/api/v1/agents/"+id+"/questions/"+q["id"].(string)+"/reply", map[string]any{"answers": "Simple"}).WantError(t, 400, "answers")
		if got := c.post("/api/v1/agents/"+id+"/questions/"+q["id"].(string)+"/reply", map[string]any{"answers": [][]string{{"Simple"}}}); got["replied"] != true {
			t.Fatalf("question reply = %v", got)
		}
		c.waitIdle(id)
		msgs = c.history(id, sid)
		if out := text(msgs[len(msgs)-1]) + text(msgs[len(msgs)-2]); !strings.Contains(out, "Simple") {
			t.Fatalf("the answer did not reach the agent: %v", msgs[len(msgs)-2:])
		}

		// Stop, start and restart keep the history.
		n := len(c.history(id, sid))
		if got := c.post("/api/v1/agents/"+id+"/stop", nil); got["stopped"] != true {
			t.Fatalf("stop = %v", got)
		}
		c.Do(t, "GET", "/api/v1/agents/"+id+"/messages?sessionId="+sid, nil).WantError(t, 400, "not running")
		if got := c.post("/api/v1/agents/"+id+"/start", nil); got["started"] != true {
			t.Fatalf("start = %v", got)
		}
		if got := len(c.history(id, sid)); got != n {
			t.Fatalf("after stop/start: %d messages, want %d", got, n)
		}
		c.post("/api/v1/agents/"+id+"/restart", nil)
		if got := len(c.history(id, sid)); got != n {
			t.Fatalf("after restart: %d messages, want %d", got, n)
		}
		if st := c.get("/api/v1/agents/" + id); len(maps(st["sessions"])) != 2 {
			t.Fatalf("sessions after restart = %v", st["sessions"])
		}
		if strings.Contains(r.env.Logs.String(), "sk-scoped-42") || strings.Contains(r.env.Logs.String(), "sk-org-7") {
			t.Fatal("a secret value reached the platform's logs")
		}
	})
}
