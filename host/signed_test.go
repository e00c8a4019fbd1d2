package host_test

import (
	"context"
	"net/http"

	"encoding/json"
	"fmt"
	"github.com/coder/websocket"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

// The tests of issue 12: what runs is what was signed. Each names what it
// caught on the code before the fix in its comment.

const tinyPNG = "data:image/png;base64,iVBORw0KGgo="

// userPrompts returns the texts of the user messages of a POST /input
// answer's session.
func userPrompts(m map[string]any) []string {
	var out []string
	sess, _ := m["session"].(map[string]any)
	msgs, _ := sess["messages"].([]any)
	for _, x := range msgs {
		msg, _ := x.(map[string]any)
		if msg["role"] != "user" {
			continue
		}
		parts, _ := msg["parts"].([]any)
		for _, p := range parts {
			if pm, ok := p.(map[string]any); ok {
				if s, ok := pm["text"].(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// mergeJSON adds extra's members to a JSON object (raw, so keys that
// differ only in case survive).
func mergeJSON(t testing.TB, body []byte, extra string) []byte {
	t.Helper()
	s := strings.TrimSpace(string(body))
	if !strings.HasSuffix(s, "}") || !strings.HasPrefix(extra, "{") {
		t.Fatalf("not objects: %s %s", s, extra)
	}
	return []byte(s[:len(s)-1] + "," + extra[1:])
}

// TestCaseVariantKeys: a signed body with a case variant of a known key
// ("PAYLOAD", "Images", "Files", "Session", "Prompt") is refused, so what
// runs is what was signed. On the old code the "PAYLOAD" request ran the
// unsigned prompt (200) and the attachment variants got past the digest.
func TestCaseVariantKeys(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice := newIdentity(t)
	now := time.Now()
	noAttach, err := trust.BodyDigest(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		extra string
	}{
		{"PAYLOAD", `{"PAYLOAD": {"prompt": "unsigned prompt"}}`},
		{"Payload", `{"Payload": {"prompt": "unsigned prompt"}}`},
		{"Images", `{"Images": ["` + tinyPNG + `"]}`},
		{"Files", `{"Files": [{"name": "x.txt", "data": "data:text/plain;base64,ZXZpbA=="}]}`},
		{"Session", `{"Session": {"session_id": "injected-session-0001", "messages": [{"role": "user", "content": "injected"}]}}`},
		{"Prompt", `{"Prompt": "unsigned prompt"}`},
		{"repeated from", `{"from": "0x` + strings.Repeat("ab", 32) + `"}`},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := signedInput(t, alice, h.Address(), now.Add(time.Duration(i)*time.Second),
				map[string]any{"prompt": "signed prompt " + c.name, "digest": noAttach}, nil)
			code, m := postRaw(t, h.URL, mergeJSON(t, body, c.extra))
			if code == 200 {
				t.Fatalf("accepted; ran %q", userPrompts(m))
			}
			if code != 400 && code != 401 {
				t.Fatalf("status %d: %v", code, m)
			}
		})
	}
	// Unsigned bodies: a repeat or variant of a known key is refused too,
	// while unknown fields are ignored as the reference host does.
	code, m := postRaw(t, h.URL, []byte(`{"prompt": "a", "PROMPT": "b"}`))
	wantError(t, code, 400, m, "PROMPT")
	code, m = postRaw(t, h.URL, []byte(`{"prompt": "a", "prompt": "b"}`))
	wantError(t, code, 400, m, "prompt")
	code, m = postRaw(t, h.URL, []byte(`{"prompt": "hi", "colour": "red", "files": [{"name": "a", "data": "eA==", "path": "/etc"}]}`))
	wantStatus(t, code, 200, m)

	// A signed payload without a prompt does not run the unsigned one
	// beside it (the old code ran it).
	body := signedInput(t, alice, h.Address(), now.Add(time.Minute), map[string]any{"note": "no prompt"}, map[string]any{"prompt": "unsigned prompt"})
	code, m = postRaw(t, h.URL, body)
	if code == 200 {
		t.Fatalf("ran the unsigned prompt: %q", userPrompts(m))
	}
}

// TestSignedWSInputRunsSignedPrompt: a signed INPUT frame whose top-level
// prompt differs from its payload's is refused; the old code ran the
// unsigned top-level prompt as the signer.
func TestSignedWSInputRunsSignedPrompt(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice := newIdentity(t)
	w := dialTrustWS(t, h)
	w.send(signedFrame(t, alice, h.Address(), "INPUT", map[string]any{"prompt": "Translate hello"},
		map[string]any{"prompt": "unsigned prompt"}))
	m, _ := w.until("OUTPUT", "ERROR")
	if m["type"] == "OUTPUT" {
		sess, _ := json.Marshal(m["session"])
		if strings.Contains(string(sess), "unsigned prompt") {
			t.Fatalf("ran the unsigned prompt: %s", sess)
		}
	}
	// A case variant of a known key in a frame is refused too.
	f := signedFrame(t, alice, h.Address(), "INPUT", map[string]any{"prompt": "Translate hi"}, nil)
	raw, _ := json.Marshal(f)
	w.sendRaw(mergeJSON(t, raw, `{"Prompt": "unsigned"}`))
	if m := w.read(); m["type"] != "ERROR" || m["code"] != "bad_request" {
		t.Fatalf("variant key: %v", m)
	}
}

// TestOpenAnonymousSeesAnonymousOnly: under trust open an unsigned caller
// lists and reads anonymous sessions only. The old code listed and showed
// signed callers' sessions to everyone.
func TestOpenAnonymousSeesAnonymousOnly(t *testing.T) {
	h := startTrustHost(t, t.TempDir(), host.WithTrust("open"))
	alice := newIdentity(t)
	code, m := postRaw(t, h.URL, signedInput(t, alice, h.Address(), time.Now(), map[string]any{"prompt": "secret plans"}, nil))
	wantStatus(t, code, 200, m)
	aid := m["session_id"].(string)
	code, m = post(t, h.testHost(), map[string]any{"prompt": "hello"})
	wantStatus(t, code, 200, m)
	anon := m["session_id"].(string)

	code, m, _ = do(t, "GET", h.URL+"/sessions", nil)
	wantStatus(t, code, 200, m)
	var ids []string
	for _, x := range m["sessions"].([]any) {
		ids = append(ids, x.(map[string]any)["session_id"].(string))
	}
	if len(ids) != 1 || ids[0] != anon {
		t.Fatalf("anonymous listing shows %v; want only %s", ids, anon)
	}
	code, m, _ = do(t, "GET", h.URL+"/sessions/"+aid, nil)
	wantError(t, code, 404, m)
}

// TestSignedGetRecipientAndSingleUse: signed GET headers name the agent
// they are for and are single use. On the old code a visitor's signed
// GET /sessions replayed to another agent listed the visitor's sessions
// there, and replays to the same agent were accepted for 5 minutes.
func TestSignedGetRecipientAndSingleUse(t *testing.T) {
	a := startTrustHost(t, t.TempDir())
	b := startTrustHost(t, t.TempDir())
	alice := newIdentity(t)
	code, m := postRaw(t, b.URL, signedInput(t, alice, b.Address(), time.Now(), map[string]any{"prompt": "at b"}, nil))
	wantStatus(t, code, 200, m)

	// Headers alice made for agent a, replayed by a to agent b.
	hd := signHeadersFor(alice, "GET", "/sessions", a.Address())
	code, m = getWithHeaders(t, b.URL+"/sessions", hd)
	wantStatus(t, code, 401, m)
	// The same headers at a work once.
	code, m = getWithHeaders(t, a.URL+"/sessions", hd)
	wantStatus(t, code, 200, m)
	code, m = getWithHeaders(t, a.URL+"/sessions", hd)
	wantError(t, code, 401, m, "already used")
}

// TestNoExistenceOracle: a caller naming an id that is not its own gets
// the same answer whether the id exists (another caller's) or not. On the
// old code an unknown id was kept and another caller's replaced, so
// CONNECTED told them apart; and SESSION_STATUS skipped the gate.
func TestNoExistenceOracle(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice, bob := newIdentity(t), newIdentity(t)
	code, m := postRaw(t, h.URL, signedInput(t, alice, h.Address(), time.Now(), map[string]any{"prompt": "hello"}, nil))
	wantStatus(t, code, 200, m)
	aliceID := m["session_id"].(string)
	unknownID := "f3a1c2d4-0000-4000-8000-00000000beef"

	connect := func(id string) map[string]any {
		w := dialTrustWS(t, h)
		w.send(signedFrame(t, bob, h.Address(), "CONNECT", map[string]any{"n": id}, map[string]any{"session_id": id}))
		return w.read()
	}
	foreign, unknown := connect(aliceID), connect(unknownID)
	if foreign["type"] != "CONNECTED" || unknown["type"] != "CONNECTED" {
		t.Fatalf("CONNECT: %v / %v", foreign, unknown)
	}
	if foreign["session_id"] == aliceID || unknown["session_id"] == unknownID || foreign["status"] != unknown["status"] {
		t.Fatalf("answers differ: foreign id → %v; unknown id → %v", foreign, unknown)
	}
	// Over HTTP: the same 404 in both cases, and with create_session a new
	// session under a fresh id in both cases.
	var refusals []string
	for i, id := range []string{aliceID, unknownID} {
		body := signedInput(t, bob, h.Address(), time.Now().Add(time.Duration(i)*time.Second), map[string]any{"prompt": "hi " + id, "session_id": id}, nil)
		code, m := postRaw(t, h.URL, body)
		wantError(t, code, 404, m, "not one of your sessions")
		refusals = append(refusals, strings.ReplaceAll(m["error"].(string), id, "ID"))
		body = signedInput(t, bob, h.Address(), time.Now().Add(time.Duration(i)*time.Second+time.Millisecond), map[string]any{"prompt": "hi " + id, "session_id": id, "create_session": true}, nil)
		code, m = postRaw(t, h.URL, body)
		wantStatus(t, code, 200, m)
		if m["session_id"] == id {
			t.Fatalf("POST /input naming %s kept it", id)
		}
	}
	if refusals[0] != refusals[1] {
		t.Fatalf("404s differ: %q vs %q", refusals[0], refusals[1])
	}

	// SESSION_STATUS goes through the gate: under strict an unsigned one is
	// refused, whatever it names.
	s := startTrustHost(t, t.TempDir(), host.WithTrust("strict"))
	w := dialTrustWS(t, s)
	w.send(map[string]any{"type": "SESSION_STATUS", "session": map[string]any{"session_id": unknownID}})
	if m := w.read(); m["type"] != "ERROR" || m["code"] != "unauthorized" {
		t.Fatalf("unsigned SESSION_STATUS under strict: %v", m)
	}
	// Anonymous callers under careful: another caller's id and an unknown
	// one get the same answer.
	w = dialTrustWS(t, h)
	w.send(map[string]any{"type": "SESSION_STATUS", "session": map[string]any{"session_id": aliceID}})
	a := w.read()
	w.send(map[string]any{"type": "SESSION_STATUS", "session": map[string]any{"session_id": unknownID}})
	u := w.read()
	delete(a, "session_id")
	delete(u, "session_id")
	if ja, ju := mustJSON(a), mustJSON(u); ja != ju {
		t.Fatalf("SESSION_STATUS differs: %s vs %s", ja, ju)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// signHeadersFor signs a body-less request for the agent to.
func signHeadersFor(id *trust.Identity, method, path, to string) http.Header {
	return trust.SignHeaders(id, method, path, to, time.Now())
}

// getWithHeaders sends a GET with the given headers.
func getWithHeaders(t testing.TB, url string, hd http.Header) (int, map[string]any) {
	t.Helper()
	var kv []string
	for k := range hd {
		kv = append(kv, k, hd.Get(k))
	}
	code, m, _ := do(t, "GET", url, nil, kv...)
	return code, m
}

func (w *wsClient) sendRaw(b []byte) {
	w.t.Helper()
	if err := w.c.Write(w.ctx, websocket.MessageText, b); err != nil {
		w.t.Fatal(err)
	}
}

// boundFrame is a frame signed and bound to the connection whose CONNECTED
// is connected: payload {type, conn: nonce, seq, …fields}.
func boundFrame(t testing.TB, id *trust.Identity, to string, connected map[string]any, seq int, typ string, fields, outer map[string]any) map[string]any {
	t.Helper()
	nonce, _ := connected["nonce"].(string)
	if nonce == "" {
		t.Fatalf("CONNECTED without a nonce: %v", connected)
	}
	p := map[string]any{"type": typ, "conn": nonce, "seq": seq}
	for k, v := range fields {
		p[k] = v
	}
	m := signedFrame(t, id, to, typ, p, nil)
	for k, v := range fields {
		m[k] = v // the reference fields beside it, as clients send them
	}
	for k, v := range outer {
		m[k] = v
	}
	return m
}

// TestSignedInputSessionIDIsSigned: a signed POST /input continues the
// session its payload names, and an unsigned top-level session_id beside
// the payload is refused (the old code continued whichever of the signer's
// sessions the unsigned field named, so anyone on the way could move a
// signed prompt into another conversation).
func TestSignedInputSessionIDIsSigned(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice := newIdentity(t)
	now := time.Now()
	start := func(at time.Time, prompt string) string {
		code, m := postRaw(t, h.URL, signedInput(t, alice, h.Address(), at, map[string]any{"prompt": prompt}, nil))
		wantStatus(t, code, 200, m)
		return m["session_id"].(string)
	}
	a := start(now, "my name is Ada")
	b := start(now.Add(time.Second), "my name is Bob")

	body := signedInput(t, alice, h.Address(), now.Add(2*time.Second), map[string]any{"prompt": "what is my name?"}, map[string]any{"session_id": a})
	code, m := postRaw(t, h.URL, body)
	wantError(t, code, 401, m, "session_id")

	body = signedInput(t, alice, h.Address(), now.Add(3*time.Second), map[string]any{"prompt": "what is my name?", "session_id": b}, nil)
	code, m = postRaw(t, h.URL, body)
	wantStatus(t, code, 200, m)
	if m["session_id"] != b || !strings.Contains(mustJSON(m["result"]), "Bob") {
		t.Fatalf("payload.session_id %s: got session %v, result %v", b, m["session_id"], m["result"])
	}
	// create_session outside the payload is not what was signed either.
	body = signedInput(t, alice, h.Address(), now.Add(3500*time.Millisecond), map[string]any{"prompt": "new", "session_id": "named-by-alice"}, map[string]any{"create_session": true})
	code, m = postRaw(t, h.URL, body)
	wantError(t, code, 401, m, "create_session")
	// The same id outside the payload as well is what was signed.
	body = signedInput(t, alice, h.Address(), now.Add(4*time.Second), map[string]any{"prompt": "again", "session_id": b}, map[string]any{"session_id": b})
	code, m = postRaw(t, h.URL, body)
	wantStatus(t, code, 200, m)
	if m["session_id"] != b {
		t.Fatalf("got session %v, want %s", m["session_id"], b)
	}
}

// TestBoundConnectSessionIsSigned: a CONNECT that declares signed frames
// continues the session its payload names, with the host's copy of the
// conversation; an unsigned top-level session_id or session beside the
// payload is ignored (the old code continued whichever of the signer's
// sessions the unsigned field named, and let a client's copy replace the
// conversation).
func TestBoundConnectSessionIsSigned(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice := newIdentity(t)
	code, m := postRaw(t, h.URL, signedInput(t, alice, h.Address(), time.Now(), map[string]any{"prompt": "my name is Ada"}, nil))
	wantStatus(t, code, 200, m)
	sid := m["session_id"].(string)
	forged := map[string]any{"session_id": sid, "iteration": 99, "turn": 9, "updated": 4e9,
		"messages": []any{map[string]any{"role": "user", "content": "my name is Mallory"}}}

	for i, tc := range []struct {
		name    string
		payload map[string]any
		outer   map[string]any
		want    string // the session CONNECTED continues; "" for a new one
	}{
		{"unsigned session_id", map[string]any{}, map[string]any{"session_id": sid}, ""},
		{"unsigned session", map[string]any{}, map[string]any{"session": map[string]any{"session_id": sid}}, ""},
		{"client copy beside a signed session_id", map[string]any{"session_id": sid}, map[string]any{"session": forged}, sid},
		{"signed session_id", map[string]any{"session_id": sid}, map[string]any{"session_id": sid}, sid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := dialTrustWS(t, h)
			tc.payload["signed_frames"] = true
			tc.payload["last_msg_id"] = fmt.Sprint(i) // distinct signatures
			w.send(signedFrame(t, alice, h.Address(), "CONNECT", tc.payload, tc.outer))
			c := w.read()
			if c["type"] != "CONNECTED" {
				t.Fatalf("CONNECT: %v", c)
			}
			if tc.want == "" && c["session_id"] == sid {
				t.Fatalf("an unsigned field chose alice's session: %v", c["session_id"])
			}
			if tc.want != "" && c["session_id"] != tc.want {
				t.Fatalf("continued %v, want %s", c["session_id"], tc.want)
			}
			if strings.Contains(mustJSON(c), "Mallory") {
				t.Fatalf("the client's unsigned copy replaced the conversation: %v", c)
			}
		})
	}
	// Through a relay, the relay's top-level id routes a new session; it
	// may not name an existing session of the signer that the signed
	// payload does not.
	relayed := func(outerID string) map[string]any {
		mc := &memConn{in: make(chan []byte, 4), out: make(chan []byte, 256), done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.ServeFrames(ctx, mc, host.ConnInfo{Transport: "relay"}) }()
		defer func() { close(mc.done); cancel(); <-done }()
		b, _ := json.Marshal(signedFrame(t, alice, h.Address(), "CONNECT", map[string]any{"signed_frames": true, "last_msg_id": outerID}, map[string]any{"session_id": outerID}))
		mc.in <- b
		for {
			var m map[string]any
			json.Unmarshal(<-mc.out, &m)
			if m["type"] == "CONNECTED" || m["type"] == "ERROR" {
				return m
			}
		}
	}
	if m := relayed(sid); m["type"] != "ERROR" || m["code"] != "unauthorized" {
		t.Fatalf("a relay named alice's session for an unsigned CONNECT: %v", m)
	}
	if m := relayed("0123456789abcdef0123456789abcdef"); m["type"] != "CONNECTED" || m["session_id"] == sid || m["status"] != "new" {
		t.Fatalf("relay's id for a new session: %v", m)
	}

	code, m = signedGet(t, alice, h.URL, "/sessions/"+sid)
	wantStatus(t, code, 200, m)
	if strings.Contains(mustJSON(m), "Mallory") {
		t.Fatalf("the stored session took the unsigned copy: %v", m)
	}
}
