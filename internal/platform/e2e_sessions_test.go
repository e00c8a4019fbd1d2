package platform_test

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform"
)

// sessionAPI calls a session's capability API with the capability in the
// header (or, with inQuery, in ?cap=).
type sessionAPI struct {
	t       *testing.T
	base    string // <platform>/a/{agentId}/session/{sessionId}
	cap     string
	inQuery bool
}

func newSessionAPI(t *testing.T, sessionURL string) *sessionAPI {
	u, err := url.Parse(sessionURL)
	if err != nil {
		t.Fatal(err)
	}
	c := u.Query().Get("cap")
	u.RawQuery = ""
	return &sessionAPI{t: t, base: u.String(), cap: c}
}

func (s *sessionAPI) do(method, path string, body any) map[string]any {
	s.t.Helper()
	resp := s.raw(method, path, body)
	return resp.Want(s.t, 200)
}

func (s *sessionAPI) raw(method, path string, body any) *platformtestResponse {
	s.t.Helper()
	c := &clientNoToken{base: s.base}
	hdr := map[string]string{}
	if s.inQuery {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "cap=" + url.QueryEscape(s.cap)
	} else if s.cap != "" {
		hdr["X-Session-Capability"] = s.cap
	}
	return c.do(s.t, method, path, body, hdr)
}

// TestSessionCapabilities checks session pages and their capability API:
// the page embeds anywhere, a capability grants its session's messages,
// events, permissions and abort and nothing of another session or agent,
// and the events stream resumes with Last-Event-ID through the platform.
func TestSessionCapabilities(t *testing.T) {
	r := newCodingRig(t, false, func(c *platform.Config) { c.FrameAncestors = "https://app.example.com" })
	c := r.client("acme")
	id, created := c.create(map[string]any{"name": "a", "initialPrompt": "Hello from A", "model": "offline/slow"})
	c.waitIdle(id)
	urlA := maps(created["sessions"])[0]["url"].(string)
	sidA := maps(created["sessions"])[0]["id"].(string)
	b := c.post("/api/v1/agents/"+id+"/messages", map[string]any{"message": "Hello from B"})
	sidB := b["sessionId"].(string)
	c.waitIdle(id)
	var urlB string
	for _, s := range maps(c.get("/api/v1/agents/" + id)["sessions"]) {
		if s["id"] == sidB {
			urlB = s["url"].(string)
		}
	}
	a, bAPI := newSessionAPI(t, urlA), newSessionAPI(t, urlB)

	// The page: HTML, embeddable by the configured origins only, no
	// Referer leak.
	resp, err := http.Get(urlA)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), "<html") ||
		!strings.Contains(csp, "frame-ancestors https://app.example.com") || strings.Count(csp, "frame-ancestors") != 1 ||
		resp.Header.Get("X-Frame-Options") != "" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("page: %d %v", resp.StatusCode, resp.Header)
	}
	for _, bad := range []string{strings.Replace(urlA, sidA, sidB, 1), strings.TrimSuffix(urlA, urlA[len(urlA)-3:]) + "xyz"} {
		resp, err := http.Get(bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // an unread, unclosed body holds its connection (goleak finds it)
		if resp.StatusCode != 404 {
			t.Fatalf("page with a capability of another session: %d", resp.StatusCode)
		}
	}

	// Messages: only the granted session.
	got := a.do("GET", "/api/messages", nil)
	if got["sessionId"] != sidA || text(maps(got["messages"])[0]) != "Hello from A" {
		t.Fatalf("A's messages = %v", got)
	}
	if got := bAPI.do("GET", "/api/messages", nil); got["sessionId"] != sidB {
		t.Fatalf("B's messages = %v", got)
	}
	a.raw("GET", "/api/messages?sessionId="+sidB, nil).WantError(t, 404, "session not found")
	a.raw("POST", "/api/messages", map[string]any{"message": "x", "sessionId": sidB}).WantError(t, 404, "session not found")
	// A's capability on B's path, and on another agent's.
	cross := &sessionAPI{t: t, base: strings.Replace(a.base, sidA, sidB, 1), cap: a.cap}
	cross.raw("GET", "/api/messages", nil).WantError(t, 404, "session not found")
	cross.inQuery = true
	cross.raw("GET", "/api/events", nil).WantError(t, 404, "session not found")
	(&sessionAPI{t: t, base: a.base}).raw("GET", "/api/messages", nil).WantError(t, 401, "capability")
	// A capability is no API token.
	(&clientNoToken{base: r.env.URL}).do(t, "GET", "/api/v1/agents/"+id, nil, map[string]string{"Authorization": "Bearer " + a.cap}).WantError(t, 401, "")

	// Events through the platform, with the capability in the query as
	// EventSource sends it; then a resume with Last-Event-ID.
	a.inQuery = true
	evURL := a.base + "/api/events?cap=" + url.QueryEscape(a.cap)
	events := openEvents(t, evURL, nil)
	sent := a.do("POST", "/api/messages", map[string]any{"message": "tell me more"})
	if sent["sessionId"] != sidA || sent["sent"] != true {
		t.Fatalf("send via capability = %v", sent)
	}
	first := next(t, events, "a status busy event", func(ev sseEvent) bool { return ev.Type == "status" && ev.Data["busy"] == true })
	var deltas []string
	last := next(t, events, "the turn's end", func(ev sseEvent) bool {
		if ev.Data["sessionId"] != sidA {
			t.Fatalf("A's stream carried another session's event: %+v", ev)
		}
		if ev.Type == "message.delta" {
			deltas = append(deltas, ev.ID)
		}
		return ev.Type == "status" && ev.Data["busy"] == false
	})
	if len(deltas) < 2 {
		t.Fatalf("%d text deltas streamed", len(deltas))
	}
	fromID, _ := strconv.Atoi(first.ID)
	lastID, _ := strconv.Atoi(last.ID)
	replay := openEvents(t, r.env.URL+"/api/v1/agents/"+id+"/events?sessionId="+sidA, map[string]string{"Authorization": "Bearer " + c.Token, "Last-Event-ID": first.ID})
	prev := fromID
	for prev < lastID {
		ev := next(t, replay, "replayed events", func(sseEvent) bool { return true })
		n, _ := strconv.Atoi(ev.ID)
		if n <= prev {
			t.Fatalf("replayed ids not increasing: %d after %d", n, prev)
		}
		prev = n
	}
	if prev != lastID {
		t.Fatalf("replay ended at %d, want %d", prev, lastID)
	}

	// Usage, permissions and abort are the session's own.
	u := a.do("GET", "/api/usage", nil)
	if ss := maps(u["sessions"]); len(ss) != 1 || ss[0]["sessionId"] != sidA || u["agentId"] != id {
		t.Fatalf("A's usage = %v", u)
	}
	c.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sidB, "message": `run bash {"command":"echo from-b"}`})
	perm := c.pendingOne("/api/v1/agents/"+id+"/permissions", "permissions")
	if p := maps(a.do("GET", "/api/permissions", nil)["permissions"]); len(p) != 0 {
		t.Fatalf("A sees B's permission: %v", p)
	}
	a.raw("POST", "/api/permissions/"+perm["id"].(string), map[string]any{"reply": "once"}).WantError(t, 404, "permission not found")
	if p := maps(bAPI.do("GET", "/api/permissions", nil)["permissions"]); len(p) != 1 {
		t.Fatalf("B's permissions = %v", p)
	}
	if got := bAPI.do("POST", "/api/permissions/"+perm["id"].(string), map[string]any{"reply": "reject"}); got["replied"] != true {
		t.Fatalf("B's reply = %v", got)
	}
	c.waitIdle(id)
	if st := a.do("GET", "/api/status", nil); st["sessionId"] != sidA || st["busy"] != false || st["status"] != "RUNNING" {
		t.Fatalf("status = %v", st)
	}

	// Abort via the capability stops A's turn and leaves B alone.
	a.do("POST", "/api/messages", map[string]any{"message": "write a long story"})
	if got := a.do("POST", "/api/abort", nil); got["sessionId"] != sidA || got["aborted"] != true {
		t.Fatalf("abort = %v", got)
	}
	if st := c.waitIdle(id); st["status"] != "RUNNING" {
		t.Fatalf("after abort: %v", st)
	}
	// Upload through the capability.
	if up := upload(t, r.env.URL, strings.TrimPrefix(a.base, r.env.URL)+"/api/files", "notes.md", 100, map[string]string{"X-Session-Capability": a.cap}).Want(t, 200); up["name"] != "notes.md" {
		t.Fatalf("upload = %v", up)
	}
	// Deleting the agent ends its capabilities.
	c.Do(t, "DELETE", "/api/v1/agents/"+id, nil).Want(t, 200)
	a.inQuery = false
	a.raw("GET", "/api/messages", nil).WantError(t, 404, "")
}

// TestEventsEndAtShutdown checks that an open event stream does not hold
// the platform's shutdown up.
func TestEventsEndAtShutdown(t *testing.T) {
	r := newCodingRig(t, false, nil)
	c := r.client("acme")
	id, _ := c.create(map[string]any{"name": "a"})
	events := openEvents(t, r.env.URL+"/api/v1/agents/"+id+"/events", map[string]string{"Authorization": "Bearer " + c.Token})
	start := time.Now()
	r.env.Stop(t)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("shutdown took %v with a stream open", took)
	}
	for range events { // drains and ends: the stream was closed
	}
}
