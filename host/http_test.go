package host_test

import (
	"context"
	"github.com/agenthost/agenthost/trust"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/llm/offline"
)

func TestInputSeedCurl(t *testing.T) {
	h := startHost(t, "offline/demo")
	code, m := post(t, h, `{"prompt": "Translate hello to Spanish"}`)
	wantStatus(t, code, 200, m)
	if m["status"] != "done" || !strings.HasPrefix(m["result"].(string), offline.Prefix) {
		t.Fatalf("answer: %v", m)
	}
	id, _ := m["session_id"].(string)
	if len(id) < 16 {
		t.Fatalf("session_id %q", id)
	}
	sess := m["session"].(map[string]any)
	if sess["session_id"] != id || sess["turn"].(float64) != 1 || sess["iteration"].(float64) != 1 || sess["updated"].(float64) <= 0 {
		t.Fatalf("session: %v", sess)
	}
	if len(sess["messages"].([]any)) != 2 {
		t.Fatalf("messages: %v", sess["messages"])
	}
	items := m["chat_items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["type"] != "user" || items[1].(map[string]any)["type"] != "agent" {
		t.Fatalf("chat_items: %v", items)
	}
	if _, ok := m["duration_ms"].(float64); !ok {
		t.Fatalf("duration_ms missing: %v", m)
	}

	code, g, _ := do(t, "GET", h.URL+"/sessions/"+id, nil)
	wantStatus(t, code, 200, g)
	for _, k := range []string{"session_id", "status", "prompt", "result", "session", "created", "expires", "duration_ms"} {
		if _, ok := g[k]; !ok {
			t.Fatalf("GET /sessions/{id} lacks %q: %v", k, g)
		}
	}
	if g["status"] != "done" || g["prompt"] != "Translate hello to Spanish" || g["result"] != m["result"] {
		t.Fatalf("stored session: %v", g)
	}
	code, g, _ = do(t, "GET", h.URL+"/sessions/00000000-0000-0000-0000-000000000000", nil)
	wantError(t, code, 404, g, "not found")
}

func TestMultiTurn(t *testing.T) {
	h := startHost(t, "offline/demo")
	_, first := post(t, h, map[string]any{"prompt": "My name is John"})
	code, second := post(t, h, map[string]any{"prompt": "What is my name?", "session": first["session"]})
	wantStatus(t, code, 200, second)
	if !strings.Contains(second["result"].(string), "Your name is John") {
		t.Fatalf("result: %v", second["result"])
	}
	if second["session_id"] != first["session_id"] {
		t.Fatalf("session changed: %v -> %v", first["session_id"], second["session_id"])
	}
	if second["session"].(map[string]any)["turn"].(float64) != 2 {
		t.Fatalf("turn: %v", second["session"])
	}
	// By id alone.
	_, third := post(t, h, map[string]any{"prompt": "Who am I?", "session_id": first["session_id"]})
	if !strings.Contains(third["result"].(string), "You are John") {
		t.Fatalf("by session_id: %v", third["result"])
	}
	// Messages in the common role/content shape are understood.
	_, fourth := post(t, h, map[string]any{"prompt": "What is my name?", "session": map[string]any{
		"messages": []any{map[string]any{"role": "user", "content": "My name is Ada"}}}})
	if !strings.Contains(fourth["result"].(string), "Your name is Ada") {
		t.Fatalf("role/content session: %v", fourth["result"])
	}
}

func TestMergeRule(t *testing.T) {
	h := startHost(t, "offline/demo")
	_, a := post(t, h, map[string]any{"prompt": "My name is John"})
	_, b := post(t, h, map[string]any{"prompt": "My favourite colour is blue", "session": a["session"]})
	// A stale copy (lower iteration): the server's newer copy wins.
	_, c := post(t, h, map[string]any{"prompt": "What is my favourite colour?", "session": a["session"]})
	if c["server_newer"] != true || !strings.Contains(c["result"].(string), "blue") {
		t.Fatalf("stale client copy: server_newer=%v result=%v", c["server_newer"], c["result"])
	}
	// A client copy ahead of the server (higher iteration) wins.
	ahead := b["session"].(map[string]any)
	ahead["iteration"] = 99.0
	ahead["messages"] = []any{map[string]any{"role": "user", "content": "My name is Zed"}}
	_, d := post(t, h, map[string]any{"prompt": "What is my name?", "session": ahead})
	if d["server_newer"] != nil || !strings.Contains(d["result"].(string), "Zed") {
		t.Fatalf("client ahead: server_newer=%v result=%v", d["server_newer"], d["result"])
	}
	// Same iteration: the newer updated wins.
	cur := d["session"].(map[string]any)
	tie := map[string]any{"session_id": cur["session_id"], "iteration": cur["iteration"], "updated": cur["updated"].(float64) + 1000,
		"messages": []any{map[string]any{"role": "user", "content": "My name is Tie"}}}
	_, e := post(t, h, map[string]any{"prompt": "What is my name?", "session": tie})
	if !strings.Contains(e["result"].(string), "Tie") {
		t.Fatalf("tie, newer client: %v", e["result"])
	}
	tie["updated"] = 1.0
	tie["iteration"] = e["session"].(map[string]any)["iteration"]
	_, f := post(t, h, map[string]any{"prompt": "What is my name?", "session": tie})
	if f["server_newer"] != true || !strings.Contains(f["result"].(string), "Tie") {
		t.Fatalf("tie, older client: %v %v", f["server_newer"], f["result"])
	}
}

func TestInputErrors(t *testing.T) {
	h := startHost(t, "offline/demo")
	cases := []struct {
		body   string
		status int
		msg    []string
	}{
		{`{"prompt": "hi"`, 400, []string{"not valid JSON"}},
		{`not json`, 400, []string{"not valid JSON"}},
		{``, 400, []string{"empty"}},
		{`[]`, 400, []string{"must be an object"}},
		{`{"prompt": 5}`, 400, []string{`"prompt"`, "string"}},
		{`{"prompt": "hi", "Prompt": "red"}`, 400, []string{`"Prompt"`, "only in case"}},
		{`{"prompt": "hi", "images": "x"}`, 400, []string{`"images"`, "list"}},
		{`{"prompt": "hi", "files": [{"name": "a", "data": "eA==", "NAME": "/etc"}]}`, 400, []string{`"NAME"`}},
		{`{"prompt": "hi", "session": {"messages": 3}}`, 400, []string{`"session.messages"`}},
		{`{"prompt": ""}`, 400, []string{`"prompt"`, "required"}},
		{`{}`, 400, []string{`"prompt"`, "required"}},
		{`{"prompt": "a"} {"prompt": "b"}`, 400, []string{"more than one"}},
	}
	for _, c := range cases {
		code, m := post(t, h, c.body)
		t.Run(c.body, func(t *testing.T) { wantError(t, code, c.status, m, c.msg...) })
	}
	code, m, hd := do(t, "GET", h.URL+"/input", nil)
	wantError(t, code, 405, m, "POST")
	if hd.Get("Allow") != "POST" {
		t.Fatalf("Allow: %q", hd.Get("Allow"))
	}
	code, m, _ = do(t, "GET", h.URL+"/nope", nil)
	wantError(t, code, 404, m)
	code, m, _ = do(t, "POST", h.URL+"/health", "{}")
	wantError(t, code, 405, m)
}

func TestTrustLevels(t *testing.T) {
	careful := startHost(t, "offline/demo")
	code, m, _ := do(t, "GET", careful.URL+"/sessions", nil)
	wantError(t, code, 401, m, "signature required")

	open := startHost(t, "offline/demo", host.WithTrust("open"))
	_, a := post(t, open, map[string]any{"prompt": "hello"})
	code, m, _ = do(t, "GET", open.URL+"/sessions", nil)
	wantStatus(t, code, 200, m)
	list := m["sessions"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["session_id"] != a["session_id"] || list[0].(map[string]any)["status"] != "done" {
		t.Fatalf("sessions: %v", m)
	}
	if _, ok := list[0].(map[string]any)["created"].(float64); !ok {
		t.Fatalf("created: %v", list[0])
	}

	strict := startHost(t, "offline/demo", host.WithTrust("strict"))
	code, m = post(t, strict, map[string]any{"prompt": "hello"})
	wantError(t, code, 401, m, "signature required")
	code, m, _ = do(t, "GET", strict.URL+"/sessions/x", nil)
	wantError(t, code, 401, m)
	code, m, _ = do(t, "GET", strict.URL+"/health", nil)
	wantStatus(t, code, 200, m)
}

func TestHealthInfo(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithSummary("I translate text"), host.WithExamples("Translate 'hello' to Spanish"),
		host.WithMaxFileSize(5), host.WithMaxFilesPerRequest(3))
	code, m, _ := do(t, "GET", h.URL+"/health", nil)
	wantStatus(t, code, 200, m)
	if m["status"] != "healthy" || m["agent"] != "translator" {
		t.Fatalf("health: %v", m)
	}
	if _, ok := m["uptime"].(float64); !ok {
		t.Fatalf("uptime: %v", m)
	}
	code, m, _ = do(t, "GET", h.URL+"/info", nil)
	wantStatus(t, code, 200, m)
	for _, k := range []string{"name", "address", "tools", "model", "trust", "version", "summary", "examples", "accepted_inputs", "protocol"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("/info lacks %q: %v", k, m)
		}
	}
	if m["name"] != "translator" || m["address"] != h.Address() || m["trust"] != "careful" || m["model"] != "offline/demo" || m["summary"] != "I translate text" {
		t.Fatalf("/info: %v", m)
	}
	ai := m["accepted_inputs"].(map[string]any)
	files := ai["files"].(map[string]any)
	if ai["text"] != true || ai["images"] != true || files["max_file_size_mb"] != 5.0 || files["max_files_per_request"] != 3.0 {
		t.Fatalf("accepted_inputs: %v", ai)
	}
	p := m["protocol"].(map[string]any)
	if p["name"] != "oip" || p["version"] != "0.1" || p["websocket_path"] != "/ws" {
		t.Fatalf("protocol: %v", p)
	}
	if len(h.Address()) != 66 {
		t.Fatalf("address %q", h.Address())
	}
}

func TestBusyAndOverload(t *testing.T) {
	t.Setenv("AGENTHOST_OFFLINE_DELAY", "40ms")
	h := startHost(t, "offline/slow", host.WithWorkers(1), host.WithQueue(1))
	_, first := post(t, h, map[string]any{"prompt": "hello"})
	id := first["session_id"].(string)

	var wg sync.WaitGroup
	results := make(chan int, 3)
	wg.Add(1)
	go func() {
		defer wg.Done()
		code, _ := post(t, h, map[string]any{"prompt": "tell me a long story please", "session_id": id})
		results <- code
	}()
	testutil.Eventually(t, 10*time.Second, "the session running", func() bool {
		_, m, _ := do(t, "GET", h.URL+"/sessions/"+id, nil)
		return m["status"] == "running"
	})
	code, m := post(t, h, map[string]any{"prompt": "again", "session_id": id})
	wantError(t, code, 409, m, "busy")

	// One worker busy, one request queued, the next is refused.
	wg.Add(1)
	go func() {
		defer wg.Done()
		code, _ := post(t, h, map[string]any{"prompt": "queued"})
		results <- code
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := host.WaitEngine(ctx, h.Server, func() bool { return host.WaitingRuns(h.Server) == 1 }); err != nil {
		t.Fatalf("the second run never waited for the worker: %v", err)
	}
	code, m, hd := do(t, "POST", h.URL+"/input", map[string]any{"prompt": "overflow"})
	wantError(t, code, 503, m, "busy")
	if hd.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	code, m, _ = do(t, "GET", h.URL+"/health", nil)
	wantStatus(t, code, 200, m)
	wg.Wait()
	close(results)
	for c := range results {
		if c != 200 {
			t.Fatalf("queued request: %d", c)
		}
	}
}

func TestExpiry(t *testing.T) {
	clock := testutil.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	var logs testutil.Buffer
	h := startHost(t, "offline/demo", host.WithClock(clock.Now), host.WithResultTTL(time.Hour), host.WithSweepInterval(20*time.Millisecond),
		host.WithLogger(logTo(&logs)))
	_, a := post(t, h, map[string]any{"prompt": "hello"})
	id := a["session_id"].(string)
	code, g, _ := do(t, "GET", h.URL+"/sessions/"+id, nil)
	wantStatus(t, code, 200, g)
	if g["expires"].(float64) != float64(clock.Now().Add(time.Hour).Unix()) {
		t.Fatalf("expires %v", g["expires"])
	}
	clock.Advance(59 * time.Minute)
	code, _, _ = do(t, "GET", h.URL+"/sessions/"+id, nil)
	if code != 200 {
		t.Fatalf("expired early: %d", code)
	}
	clock.Advance(2 * time.Minute)
	code, g, _ = do(t, "GET", h.URL+"/sessions/"+id, nil)
	wantError(t, code, 404, g)
	// The expired session cannot be continued, also once the sweeper (every
	// 20ms here) has deleted it: its id stays reserved, and a new session
	// starts under a fresh one.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := logs.WaitFor(ctx, "deleted expired sessions"); err != nil {
		t.Fatalf("the sweeper never deleted the session: %v", err)
	}
	_, b := post(t, h, map[string]any{"prompt": "hello", "session_id": id})
	if b["session_id"] == id {
		t.Fatal("expired session continued")
	}
}

func TestCORS(t *testing.T) {
	h := startHost(t, "offline/demo")
	code, _, hd := do(t, "OPTIONS", h.URL+"/input", nil, "Origin", "http://localhost:5173", "Access-Control-Request-Method", "POST")
	if code != 204 || hd.Get("Access-Control-Allow-Origin") != "http://localhost:5173" || !strings.Contains(hd.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", code, hd)
	}
	// A page may sign: every header of a signed request (X-Co-*, the A2A
	// envelope and extensions) is allowed.
	allowed := strings.ToLower(hd.Get("Access-Control-Allow-Headers"))
	for _, name := range []string{trust.HeaderFrom, trust.HeaderTo, trust.HeaderSignature, trust.HeaderTimestamp, trust.HeaderNonce, host.A2AEnvelopeHeader, "X-A2A-Extensions", "X-Request-Id"} {
		if !strings.Contains(allowed, strings.ToLower(name)) {
			t.Errorf("preflight does not allow %s: %q", name, allowed)
		}
	}
	_, _, hd = do(t, "GET", h.URL+"/health", nil, "Origin", "http://localhost:5173")
	if hd.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Fatalf("CORS header missing: %v", hd)
	}
	// Other origins: see TestBrowserOrigins.
}

// TestUnknownSessionID: naming a session that is not the caller's is a 404
// saying how to start one, not a silent new session; create_session starts
// one under the name, which later requests then continue; a client passing
// back its copy of the conversation (as the reference clients do) continues
// from it.
func TestUnknownSessionID(t *testing.T) {
	h := startHost(t, "offline/demo")
	code, m := post(t, h, map[string]any{"prompt": "hi", "session_id": "ticket-42"})
	wantError(t, code, 404, m, "create_session")

	code, m = post(t, h, map[string]any{"prompt": "my name is Ada", "session_id": "ticket-42", "create_session": true})
	wantStatus(t, code, 200, m)
	id := m["session_id"].(string)
	for _, named := range []string{"ticket-42", id} {
		code, m = post(t, h, map[string]any{"prompt": "what is my name?", "session_id": named})
		wantStatus(t, code, 200, m)
		if m["session_id"] != id || !strings.Contains(m["result"].(string), "Ada") {
			t.Fatalf("naming %s: session %v, result %v; want %s continued", named, m["session_id"], m["result"], id)
		}
	}

	copyOf := map[string]any{"session_id": "gone-from-this-host", "turn": 1, "iteration": 2, "messages": []any{
		map[string]any{"role": "user", "content": "my name is Bea"},
		map[string]any{"role": "assistant", "content": "Nice to meet you, Bea!"}}}
	code, m = post(t, h, map[string]any{"prompt": "what is my name?", "session": copyOf})
	wantStatus(t, code, 200, m)
	if !strings.Contains(m["result"].(string), "Bea") {
		t.Fatalf("continuing from the client's copy: %v", m["result"])
	}
}
