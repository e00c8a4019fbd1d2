package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
)

type wsClient struct {
	t    testing.TB
	c    *websocket.Conn
	ctx  context.Context
	seen []map[string]any
}

func dialWS(t testing.TB, h *testHost) *wsClient {
	t.Helper()
	// Every read and write waits as long as the test may run, not a fixed
	// time: under -race on a loaded machine a turn can take many seconds.
	ctx := testutil.Context(t)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 24)
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c, ctx: ctx}
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	b, _ := json.Marshal(v)
	if err := w.c.Write(w.ctx, websocket.MessageText, b); err != nil {
		w.t.Fatal(err)
	}
}

func (w *wsClient) read() map[string]any {
	w.t.Helper()
	_, b, err := w.c.Read(w.ctx)
	if err != nil {
		w.t.Fatalf("read: %v (seen %v)", err, types(w.seen))
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatal(err)
	}
	w.seen = append(w.seen, m)
	return m
}

// until reads frames up to and including one of the given types.
func (w *wsClient) until(typs ...string) (map[string]any, []map[string]any) {
	w.t.Helper()
	var got []map[string]any
	for {
		m := w.read()
		got = append(got, m)
		for _, t := range typs {
			if m["type"] == t {
				return m, got
			}
		}
	}
}

func types(ms []map[string]any) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i], _ = m["type"].(string)
	}
	return out
}

func chunks(ms []map[string]any) string {
	var b strings.Builder
	for _, m := range ms {
		if m["type"] == "STREAM" {
			b.WriteString(m["chunk"].(string))
		}
	}
	return b.String()
}

func TestWSAppJS(t *testing.T) {
	h := startHost(t, "offline/demo")
	w := dialWS(t, h)
	// The seed's app.js: INPUT with no CONNECT.
	w.send(map[string]any{"type": "INPUT", "prompt": "Translate hello to Spanish"})
	out, got := w.until("OUTPUT")
	if out["result"] == "" || chunks(got) != out["result"] {
		t.Fatalf("streamed %q, result %q", chunks(got), out["result"])
	}
	id := out["session_id"].(string)
	for _, m := range got {
		switch m["type"] {
		case "llm_call", "llm_result", "STREAM", "OUTPUT":
			if m["id"] == nil || m["ts"] == nil || m["session_id"] != id {
				t.Fatalf("trace event without id/ts/session_id: %v", m)
			}
		}
	}
	if types(got)[0] != "llm_call" {
		t.Fatalf("first frame %v", types(got))
	}
	if out["session"] == nil || out["chat_items"] == nil || out["duration_ms"] == nil {
		t.Fatalf("OUTPUT: %v", out)
	}
	// The conversation continues on the same connection.
	w.send(map[string]any{"type": "INPUT", "prompt": "My name is John"})
	w.until("OUTPUT")
	w.send(map[string]any{"type": "INPUT", "prompt": "What is my name?"})
	out, _ = w.until("OUTPUT")
	if !strings.Contains(out["result"].(string), "John") || out["session_id"] != id {
		t.Fatalf("continued: %v", out)
	}
}

func TestWSConnectAndTools(t *testing.T) {
	h := startHost(t, "offline/demo")
	w := dialWS(t, h)
	w.send(map[string]any{"type": "CONNECT"})
	c := w.read()
	if c["type"] != "CONNECTED" || c["status"] != "new" || c["session_id"] == "" {
		t.Fatalf("CONNECTED: %v", c)
	}
	w.send(map[string]any{"type": "INPUT", "prompt": "use add on 2 and 3"})
	out, got := w.until("OUTPUT")
	if out["session_id"] != c["session_id"] {
		t.Fatalf("session %v, connected to %v", out["session_id"], c["session_id"])
	}
	var call, res map[string]any
	for _, m := range got {
		switch m["type"] {
		case "tool_call":
			call = m
		case "tool_result":
			res = m
		}
	}
	if call == nil || call["name"] != "add" || call["tool_id"] == "" || call["args"].(map[string]any)["a"] != 2.0 {
		t.Fatalf("tool_call: %v", call)
	}
	if res == nil || res["status"] != "completed" || res["result"] != "5" || res["tool_id"] != call["tool_id"] || res["timing_ms"] == nil {
		t.Fatalf("tool_result: %v", res)
	}
	if sync := find(got, "session_sync"); sync == nil || sync["session"].(map[string]any)["session_id"] != c["session_id"] {
		t.Fatalf("session_sync after the tool round: %v", sync)
	}
	items := out["chat_items"].([]any)
	var kinds []string
	for _, it := range items {
		kinds = append(kinds, it.(map[string]any)["type"].(string))
	}
	if strings.Join(kinds, ",") != "user,tool_call,tool_result,agent" {
		t.Fatalf("chat_items: %v", kinds)
	}
	// A second connection resumes the finished session with its history.
	w2 := dialWS(t, h)
	w2.send(map[string]any{"type": "CONNECT", "session_id": c["session_id"]})
	c2 := w2.read()
	if c2["status"] != "connected" || c2["session"] == nil || len(c2["chat_items"].([]any)) != 4 {
		t.Fatalf("reconnect: %v", c2)
	}
	w2.send(map[string]any{"type": "SESSION_STATUS", "session": map[string]any{"session_id": c["session_id"]}})
	st := w2.read()
	if st["type"] != "SESSION_STATUS" || st["status"] != "done" {
		t.Fatalf("SESSION_STATUS: %v", st)
	}
}

func TestWSResume(t *testing.T) {
	t.Setenv("AGENTHOST_OFFLINE_DELAY", "30ms")
	h := startHost(t, "offline/slow")
	w := dialWS(t, h)
	w.send(map[string]any{"type": "CONNECT"})
	id := w.read()["session_id"]
	w.send(map[string]any{"type": "INPUT", "prompt": "please tell me something long enough to stream in many chunks"})
	var before []map[string]any
	for len(before) < 4 {
		m := w.read()
		if m["type"] == "STREAM" {
			before = append(before, m)
		}
	}
	last := before[len(before)-1]["id"]
	w.c.Close(websocket.StatusNormalClosure, "bye")

	// The run goes on without a client: wait for it to commit more events.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		select {
		case <-host.EngineChanged(h.Server):
		case <-ctx.Done():
			t.Fatal("the run stopped when its client left")
		}
	}
	w2 := dialWS(t, h)
	w2.send(map[string]any{"type": "CONNECT", "session_id": id, "last_msg_id": last})
	c := w2.read()
	if c["type"] != "CONNECTED" || c["status"] != "running" {
		t.Fatalf("CONNECTED: %v", c)
	}
	out, after := w2.until("OUTPUT")
	full := chunks(before) + chunks(after)
	if full != out["result"] {
		t.Fatalf("resumed stream:\n%q\nresult:\n%q", full, out["result"])
	}
	seen := map[any]bool{}
	for _, m := range after {
		if seen[m["id"]] {
			t.Fatalf("event %v sent twice", m["id"])
		}
		seen[m["id"]] = true
	}
}

// addrGate admits callers by the "from" they claim: a stand-in for the
// trust gate, to test ownership through the Gate seam.
type addrGate struct{}

func (addrGate) Admit(_ context.Context, r *host.Request) (host.Caller, error) {
	if r.From == "" && r.Header != nil {
		r.From = r.Header.Get("X-Co-From")
	}
	return host.Caller{Address: r.From, Level: "contact"}, nil
}

func TestWSOwnership(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithGate(addrGate{}))
	alice := dialWS(t, h)
	alice.send(map[string]any{"type": "CONNECT", "from": "0xalice"})
	aid := alice.read()["session_id"]
	alice.send(map[string]any{"type": "INPUT", "prompt": "My name is Alice"})
	alice.until("OUTPUT")

	bob := dialWS(t, h)
	bob.send(map[string]any{"type": "CONNECT", "from": "0xbob", "session_id": aid, "last_msg_id": "0"})
	c := bob.read()
	if c["session_id"] == aid || c["status"] != "new" || c["session"] != nil {
		t.Fatalf("bob got alice's session: %v", c)
	}
	bob.send(map[string]any{"type": "INPUT", "prompt": "What is my name?"})
	out, got := bob.until("OUTPUT")
	if strings.Contains(out["result"].(string), "Alice") {
		t.Fatal("bob's run saw alice's conversation")
	}
	for _, m := range got {
		if m["session_id"] == aid {
			t.Fatalf("bob received alice's event %v", m)
		}
	}
	// Over HTTP too: another caller's id is a 404, and listing is per caller.
	code, m, _ := do(t, "GET", h.URL+"/sessions/"+aid.(string), nil, "X-Co-From", "0xbob")
	wantError(t, code, 404, m)
	code, m, _ = do(t, "GET", h.URL+"/sessions/"+aid.(string), nil, "X-Co-From", "0xalice")
	wantStatus(t, code, 200, m)
	code, m, _ = do(t, "GET", h.URL+"/sessions", nil, "X-Co-From", "0xbob")
	wantStatus(t, code, 200, m)
	if n := len(m["sessions"].([]any)); n != 1 {
		t.Fatalf("bob lists %d sessions", n)
	}
	code, m = post(t, h, map[string]any{"prompt": "What is my name?", "session_id": aid, "from": "0xbob"})
	wantStatus(t, code, 200, m)
	if m["session_id"] == aid || strings.Contains(m["result"].(string), "Alice") {
		t.Fatalf("bob continued alice's session over HTTP: %v", m)
	}
}

func TestWSInterrupt(t *testing.T) {
	t.Setenv("AGENTHOST_OFFLINE_DELAY", "50ms")
	h := startHost(t, "offline/slow")
	w := dialWS(t, h)
	w.send(map[string]any{"type": "INPUT", "prompt": "please tell me something long enough to stream in many chunks"})
	w.until("STREAM")
	w.send(map[string]any{"type": "INPUT", "prompt": "and another"})
	busy, _ := w.until("ERROR")
	if busy["code"] != "session_busy" {
		t.Fatalf("second INPUT: %v", busy)
	}
	w.send(map[string]any{"type": "INTERRUPT"})
	out, _ := w.until("OUTPUT")
	if out["status"] != "interrupted" {
		t.Fatalf("OUTPUT after INTERRUPT: %v", out)
	}
	_, g, _ := do(t, "GET", h.URL+"/sessions/"+out["session_id"].(string), nil)
	if g["status"] != "interrupted" {
		t.Fatalf("stored status %v", g["status"])
	}
	w.send(map[string]any{"type": "INTERRUPT"})
	if e := w.read(); e["type"] != "ERROR" || e["code"] != "not_running" {
		t.Fatalf("INTERRUPT when idle: %v", e)
	}
}

func TestWSApproval(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithApproval("danger"))
	w := dialWS(t, h)
	w.send(map[string]any{"type": "INPUT", "prompt": `use danger on "launch"`})
	ask, _ := w.until("approval_needed")
	if ask["tool"] != "danger" || ask["arguments"].(map[string]any)["question"] != "launch" || ask["description"] == nil {
		t.Fatalf("approval_needed: %v", ask)
	}
	id := ask["session_id"].(string)
	_, g, _ := do(t, "GET", h.URL+"/sessions/"+id, nil)
	if g["status"] != "waiting_approval" {
		t.Fatalf("status while waiting: %v", g["status"])
	}
	w.send(map[string]any{"type": "APPROVAL_RESPONSE", "approved": true, "scope": "session"})
	_, got := w.until("OUTPUT")
	if res := find(got, "tool_result"); res == nil || res["status"] != "completed" || res["result"] != "did launch" {
		t.Fatalf("approved tool: %v", res)
	}
	// Scope "session": no second question in this session.
	w.send(map[string]any{"type": "INPUT", "prompt": `use danger on "again"`})
	_, got = w.until("OUTPUT")
	if find(got, "approval_needed") != nil {
		t.Fatal("asked again after a session-wide approval")
	}
	// A new session asks again; a rejection with feedback reaches the model.
	w2 := dialWS(t, h)
	w2.send(map[string]any{"type": "INPUT", "prompt": `use danger on "x"`})
	w2.until("approval_needed")
	w2.send(map[string]any{"type": "APPROVAL_RESPONSE", "approved": false, "feedback": "not today"})
	_, got = w2.until("OUTPUT")
	if res := find(got, "tool_result"); res == nil || res["status"] != "failed" || !strings.Contains(res["result"].(string), "not today") {
		t.Fatalf("rejected tool: %v", res)
	}
	w2.send(map[string]any{"type": "APPROVAL_RESPONSE", "approved": true})
	if e := w2.read(); e["type"] != "ERROR" || e["code"] != "not_waiting" {
		t.Fatalf("answer with nothing pending: %v", e)
	}
	// Over plain HTTP nobody can approve: the call is refused, the run ends.
	code, m := post(t, h, map[string]any{"prompt": `use danger on "y"`})
	wantStatus(t, code, 200, m)
	items := m["chat_items"].([]any)
	var refused bool
	for _, it := range items {
		if it := it.(map[string]any); it["type"] == "tool_result" && strings.Contains(it["content"].(string), "approval") {
			refused = it["status"] == "failed"
		}
	}
	if !refused {
		t.Fatalf("HTTP run with an approval tool: %v", items)
	}
}

func find(ms []map[string]any, typ string) map[string]any {
	for _, m := range ms {
		if m["type"] == typ {
			return m
		}
	}
	return nil
}

func TestWSAskUser(t *testing.T) {
	h := startHost(t, "offline/demo")
	w := dialWS(t, h)
	w.send(map[string]any{"type": "INPUT", "prompt": `use ask "favourite colour?"`})
	q, _ := w.until("ask_user")
	if q["text"] != "favourite colour?" || fmt.Sprint(q["options"]) != "[red blue]" || q["multi_select"] != false {
		t.Fatalf("ask_user: %v", q)
	}
	w.send(map[string]any{"type": "ASK_USER_RESPONSE", "answer": "blue"})
	_, got := w.until("OUTPUT")
	if res := find(got, "tool_result"); res == nil || res["result"] != "the user said blue" {
		t.Fatalf("answered: %v", res)
	}
	w.send(map[string]any{"type": "INPUT", "prompt": `use ask "which?"`})
	w.until("ask_user")
	w.send(map[string]any{"type": "ASK_USER_RESPONSE", "answer": []string{"red", "blue"}})
	_, got = w.until("OUTPUT")
	if res := find(got, "tool_result"); res == nil || res["result"] != "the user said red,blue" {
		t.Fatalf("multi answer: %v", res)
	}
	// Over plain HTTP nobody can answer: the tool gets agent.ErrNoPerson.
	code, m := post(t, h, map[string]any{"prompt": `use ask "colour?"`})
	wantStatus(t, code, 200, m)
	var failed bool
	for _, it := range m["chat_items"].([]any) {
		if it := it.(map[string]any); it["type"] == "tool_result" {
			failed = it["status"] == "failed" && strings.Contains(it["content"].(string), "no person")
		}
	}
	if !failed {
		t.Fatalf("ask over HTTP: %v", m["chat_items"])
	}
}

func TestWSUploads(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithMaxFileSize(0.001))
	w := dialWS(t, h)
	w.send(map[string]any{"type": "INPUT", "prompt": "read this", "files": []map[string]any{{"name": "a.txt", "data": "data:text/plain;base64,aGVsbG8="}}})
	out, _ := w.until("OUTPUT")
	user := out["chat_items"].([]any)[0].(map[string]any)
	if !strings.Contains(user["content"].(string), "a.txt") || !strings.Contains(user["content"].(string), "uploads") {
		t.Fatalf("file over WS: %v", user)
	}
	big := "data:text/plain;base64," + strings.Repeat("QUFB", 1000)
	w.send(map[string]any{"type": "INPUT", "prompt": "x", "files": []map[string]any{{"name": "big.txt", "data": big}}})
	if e, _ := w.until("ERROR"); e["code"] != "too_large" || !strings.Contains(e["message"].(string), `"big.txt"`) {
		t.Fatalf("too large over WS: %v", e)
	}
}

func TestWSFramesAndErrors(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithPingInterval(50*time.Millisecond))
	w := dialWS(t, h)
	if p, _ := w.until("PING"); p["ts"] == nil {
		t.Fatalf("PING: %v", p)
	}
	w.send(map[string]any{"type": "PONG"})
	w.send(map[string]any{"type": "PING"})
	w.until("PONG")
	cases := []struct {
		frame string
		code  string
		msg   string
	}{
		{`not json`, "bad_request", "JSON"},
		{`{"type":"FLY"}`, "bad_request", `unknown frame type "FLY"`},
		{`{"prompt":"x"}`, "bad_request", "no type"},
		{`{"type":"INPUT"}`, "bad_request", `"prompt"`},
		{`{"type":"INPUT","prompt":7}`, "bad_request", `"prompt"`},
		{`{"type":"INPUT","prompt":"x","PROMPT":"y"}`, "bad_request", `"PROMPT"`},
		{`{"type":"APPROVAL_RESPONSE"}`, "bad_request", `"approved"`},
		{`{"type":"APPROVAL_RESPONSE","approved":true,"scope":"forever"}`, "bad_request", `"scope"`},
		{`{"type":"ASK_USER_RESPONSE","answer":5}`, "bad_request", `"answer"`},
		{`{"type":"ONBOARD_SUBMIT","payload":{"invite_code":"x"}}`, "unauthorized", "signature required"},
		{`{"type":"SESSION_STATUS","session_id":"nope"}`, "not_found", "not found"},
	}
	for _, c := range cases {
		if err := w.c.Write(w.ctx, websocket.MessageText, []byte(c.frame)); err != nil {
			t.Fatal(err)
		}
		e, _ := w.until("ERROR")
		if e["code"] != c.code || !strings.Contains(e["message"].(string), c.msg) {
			t.Fatalf("%s: got %v, want code %s mentioning %q", c.frame, e, c.code, c.msg)
		}
	}
	strict := startHost(t, "offline/demo", host.WithTrust("strict"))
	s := dialWS(t, strict)
	s.send(map[string]any{"type": "INPUT", "prompt": "hi"})
	if e, _ := s.until("ERROR"); e["code"] != "unauthorized" || !strings.Contains(e["message"].(string), "signature required") {
		t.Fatalf("strict INPUT: %v", e)
	}
	s.send(map[string]any{"type": "CONNECT"})
	if e, _ := s.until("ERROR"); e["code"] != "unauthorized" {
		t.Fatalf("strict CONNECT: %v", e)
	}
}

// memConn is an in-memory FrameConn, as the relay provides one.
type memConn struct {
	in, out chan []byte
	done    chan struct{}
}

func (m *memConn) ReadFrame(ctx context.Context) ([]byte, error) {
	select {
	case b := <-m.in:
		return b, nil
	case <-m.done:
		return nil, errors.New("closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *memConn) WriteFrame(ctx context.Context, b []byte) error {
	select {
	case m.out <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *memConn) Close(string) error { return nil }

func TestServeFramesWithoutWebSocket(t *testing.T) {
	h := startHost(t, "offline/demo")
	mc := &memConn{in: make(chan []byte, 4), out: make(chan []byte, 256), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.ServeFrames(ctx, mc, host.ConnInfo{Transport: "relay"}) }()
	mc.in <- []byte(`{"type":"INPUT","prompt":"use reverse on \"abc\""}`)
	var got []string
	for {
		var m map[string]any
		json.Unmarshal(<-mc.out, &m)
		got = append(got, m["type"].(string))
		if m["type"] == "OUTPUT" {
			break
		}
	}
	if !strings.Contains(strings.Join(got, ","), "tool_call,tool_result") {
		t.Fatalf("relayed frames: %v", got)
	}
	close(mc.done)
	cancel()
	<-done
}

func TestGateBuilder(t *testing.T) {
	var got host.GateEnv
	h := startHost(t, "offline/demo", host.WithTrust("strict"), host.WithGateBuilder(func(env host.GateEnv) (host.Gate, error) {
		got = env
		return addrGate{}, nil
	}))
	if got.Config == nil || got.Config.Trust != "strict" || !host.GateEnvHasStore(got) || got.Identity == nil || got.Identity.Address() != h.Address() {
		t.Fatalf("gate env: %+v", got)
	}
	// The built gate is in force: strict, but addrGate admits everyone.
	code, m := post(t, h, map[string]any{"prompt": "hi"})
	wantStatus(t, code, 200, m)
}

// A client that answers OUTPUT at once — as the seed's app.js does — must
// never find the session busy: the run slot is free before OUTPUT is sent.
// Several such clients at once make the window easy to hit. The clients
// run in goroutines of their own, so they report by t.Errorf and return
// (t.Fatal must not be called off the test's goroutine).
func TestWSInputRightAfterOutput(t *testing.T) {
	h := startHost(t, "offline/demo")
	ctx := testutil.Context(t)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			if err := answerAtOnce(ctx, h, 25); err != nil {
				t.Errorf("client %d: %v", c, err)
			}
		})
	}
	wg.Wait()
}

// answerAtOnce opens a WebSocket session and sends turns+1 INPUTs, each
// the instant the previous OUTPUT is read; an ERROR in their place fails.
func answerAtOnce(ctx context.Context, h *testHost, turns int) error {
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/ws", nil)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 24)
	send := func(prompt string) error {
		b, _ := json.Marshal(map[string]any{"type": "INPUT", "prompt": prompt})
		return c.Write(ctx, websocket.MessageText, b)
	}
	if err := send("hello"); err != nil {
		return err
	}
	for i := 0; i <= turns; i++ {
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return fmt.Errorf("turn %d: %w", i, err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				return err
			}
			if m["type"] == "ERROR" {
				return fmt.Errorf("INPUT %d, sent the instant OUTPUT arrived, was refused: %v", i, m)
			}
			if m["type"] == "OUTPUT" {
				break
			}
		}
		if i < turns {
			if err := send(fmt.Sprintf("message %d", i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// A client that leaves while its INPUT is still being admitted leaves no
// live session behind once the run has ended.
func TestWSLeaveDuringStart(t *testing.T) {
	h := startHost(t, "offline/demo")
	for i := range 50 {
		w := dialWS(t, h)
		w.send(map[string]any{"type": "INPUT", "prompt": fmt.Sprintf("hello %d", i)})
		w.c.CloseNow()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := host.WaitEngine(ctx, h.Server, func() bool { return host.LiveSessions(h.Server) == 0 }); err != nil {
		t.Fatalf("%d sessions still live after every client left and every run ended", host.LiveSessions(h.Server))
	}
}
