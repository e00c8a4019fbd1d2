package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/store/sqlite"
	"github.com/agenthost/agenthost/trust"

	"github.com/agenthost/agenthost/trust/policy"
)

// TestTrustSignedInput covers the verification of signed POST /input over
// a real connection: a good request, its replay, an expired timestamp, a
// wrong recipient, a forged signature and tampering with what the payload
// digest covers.
func TestTrustSignedInput(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice := newIdentity(t)
	now := time.Now()

	good := signedInput(t, alice, h.Address(), now, map[string]any{"prompt": "hello"}, nil)
	code, m := postRaw(t, h.URL, good)
	wantStatus(t, code, 200, m)
	code, m = postRaw(t, h.URL, good)
	wantError(t, code, 401, m, "already used")

	code, m = postRaw(t, h.URL, signedInput(t, alice, h.Address(), now.Add(-400*time.Second), map[string]any{"prompt": "hello"}, nil))
	wantError(t, code, 401, m, "expired")
	code, m = postRaw(t, h.URL, signedInput(t, alice, h.Address(), now.Add(400*time.Second), map[string]any{"prompt": "hello"}, nil))
	wantError(t, code, 401, m, "expired")

	other := newIdentity(t)
	code, m = postRaw(t, h.URL, signedInput(t, alice, other.Address(), now, map[string]any{"prompt": "hello"}, nil))
	wantError(t, code, 401, m, "wrong recipient")

	// Forged: the prompt changed after signing; or signed by another key.
	var forged map[string]any
	json.Unmarshal(signedInput(t, alice, h.Address(), now, map[string]any{"prompt": "hello"}, nil), &forged)
	forged["payload"].(map[string]any)["prompt"] = "transfer everything"
	code, m = post(t, h.testHost(), forged)
	wantError(t, code, 401, m, "invalid signature")
	json.Unmarshal(signedInput(t, other, h.Address(), now, map[string]any{"prompt": "hi"}, nil), &forged)
	forged["from"] = alice.Address()
	code, m = post(t, h.testHost(), forged)
	wantError(t, code, 401, m, "invalid signature")

	// A digest binds the session and attachments to the signature.
	file := []map[string]any{{"name": "a.txt", "data": "data:text/plain;base64,aGVsbG8="}}
	fj, _ := json.Marshal(file)
	digest, err := trust.BodyDigest(nil, nil, fj)
	if err != nil {
		t.Fatal(err)
	}
	body := signedInput(t, alice, h.Address(), now, map[string]any{"prompt": "read the file", "digest": digest}, map[string]any{"files": file})
	var tampered map[string]any
	json.Unmarshal(body, &tampered)
	tampered["files"] = []map[string]any{{"name": "a.txt", "data": "data:text/plain;base64,ZXZpbA=="}}
	code, m = post(t, h.testHost(), tampered)
	wantError(t, code, 401, m, "digest")
	tampered["files"] = file
	tampered["session"] = map[string]any{"session_id": "injected-session-0001", "messages": []any{}}
	code, m = post(t, h.testHost(), tampered)
	wantError(t, code, 401, m, "digest")
	code, m = postRaw(t, h.URL, body)
	wantStatus(t, code, 200, m)

	// Malformed envelopes are 401 too, never 500.
	code, m = post(t, h.testHost(), map[string]any{"payload": map[string]any{"prompt": "x"}, "from": alice.Address()})
	wantError(t, code, 401, m)
}

// TestTrustSessionsPerCaller: signed callers list only their own sessions
// and get 404 for another caller's; unsigned listing is 401 under careful.
func TestTrustSessionsPerCaller(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice, bob := newIdentity(t), newIdentity(t)
	code, m := postRaw(t, h.URL, signedInput(t, alice, h.Address(), time.Now(), map[string]any{"prompt": "My name is Alice"}, nil))
	wantStatus(t, code, 200, m)
	aid := m["session_id"].(string)
	code, m = postRaw(t, h.URL, signedInput(t, bob, h.Address(), time.Now(), map[string]any{"prompt": "hi"}, nil))
	wantStatus(t, code, 200, m)
	bid := m["session_id"].(string)
	code, m = post(t, h.testHost(), map[string]any{"prompt": "anonymous"})
	wantStatus(t, code, 200, m)

	code, m = signedGet(t, alice, h.URL, "/sessions")
	wantStatus(t, code, 200, m)
	list := m["sessions"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["session_id"] != aid {
		t.Fatalf("alice lists %v", list)
	}
	code, m = signedGet(t, bob, h.URL, "/sessions/"+aid)
	wantError(t, code, 404, m)
	code, m = signedGet(t, bob, h.URL, "/sessions/"+bid)
	wantStatus(t, code, 200, m)
	code, m, _ = do(t, "GET", h.URL+"/sessions", nil)
	wantError(t, code, 401, m, "signature required")
	code, m, _ = do(t, "GET", h.URL+"/sessions/"+aid, nil)
	wantError(t, code, 404, m)

	// Bob naming alice's session is told it is not his; asking to create
	// it gets him a new one.
	code, m = postRaw(t, h.URL, signedInput(t, bob, h.Address(), time.Now(), map[string]any{"prompt": "What is my name?", "session_id": aid}, nil))
	wantError(t, code, 404, m, "not one of your sessions")
	code, m = postRaw(t, h.URL, signedInput(t, bob, h.Address(), time.Now(), map[string]any{"prompt": "What is my name?", "session_id": aid, "create_session": true}, nil))
	wantStatus(t, code, 200, m)
	if m["session_id"] == aid || strings.Contains(m["result"].(string), "Alice") {
		t.Fatalf("bob continued alice's session: %v", m)
	}
	// A signed GET with a bad signature is 401.
	hd := trust.SignHeaders(alice, "GET", "/sessions", h.Address(), time.Now())
	code, m, _ = do(t, "GET", h.URL+"/sessions/"+aid, nil, trust.HeaderFrom, alice.Address(), trust.HeaderTo, h.Address(),
		trust.HeaderSignature, hd.Get(trust.HeaderSignature), trust.HeaderTimestamp, hd.Get(trust.HeaderTimestamp))
	wantError(t, code, 401, m, "invalid signature")
}

// TestTrustLists: a blacklisted caller with a valid signature is refused,
// whitelisted callers pass strict, patterns and comments work, the
// blacklist wins; a list file that goes away is an empty list, one edited
// into nonsense fails closed with a log line, and a malformed list at
// start stops the host there, naming the file, the line and why.
func TestTrustLists(t *testing.T) {
	good, bad, stranger := newIdentity(t), newIdentity(t), newIdentity(t)
	dir := t.TempDir()
	listFile := filepath.Join(dir, "white.txt")
	writeFile(t, listFile, "# partners\n"+good.Address()+"  # good one\n\n"+bad.Address()[:10]+"*\n")
	var logs logBuffer
	clock := &fakeClock{now: time.Now()}
	// Whitelist from a file (next to host.yaml), blacklist inline.
	writeFile(t, filepath.Join(dir, ".co", "host.yaml"), "trust: strict\nwhitelist: ../white.txt\nblacklist:\n  - "+bad.Address()+"\n")
	h := startTrustHost(t, dir, host.WithLogger(logs.logger()), host.WithClock(clock.Now))
	send := func(id *trust.Identity) (int, map[string]any) {
		return postRaw(t, h.URL, signedInput(t, id, h.Address(), clock.Now(), map[string]any{"prompt": "hi"}, nil))
	}
	code, m := send(good)
	wantStatus(t, code, 200, m)
	code, m = send(bad) // matches the whitelist pattern too: the blacklist wins
	wantError(t, code, 403, m, "blocked")
	if strings.Contains(m["error"].(string), bad.Address()[:10]) {
		t.Fatalf("denial leaks the list: %v", m)
	}
	code, m = send(stranger)
	// A refused caller learns its own address, to give the operator.
	wantError(t, code, 403, m, "your address is "+stranger.Address()+"; to be admitted, ask this agent's operator: agenthost trust promote")
	code, m = post(t, h.testHost(), map[string]any{"prompt": "hi"})
	wantError(t, code, 401, m, "signature required")

	// The list file goes away: the list is empty (a warning says so), so
	// the whitelisted caller is a stranger again.
	if err := os.Remove(listFile); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second) // lists are rechecked every 2 s
	code, m = send(good)
	wantError(t, code, 403, m)
	if l := logs.String(); !strings.Contains(l, "does not exist") || !strings.Contains(l, "white.txt") {
		t.Fatalf("log: %s", l)
	}
	// Edited into nonsense while running: everyone is refused, and the log
	// says why (naming the file, not its contents).
	writeFile(t, listFile, "0xgood123abc...\n")
	clock.Advance(3 * time.Second)
	code, m = send(good)
	wantError(t, code, 403, m, "access lists are unavailable")
	if l := logs.String(); !strings.Contains(l, "access list unusable") || strings.Contains(l, good.Address()) {
		t.Fatalf("log: %s", l)
	}
	writeFile(t, listFile, good.Address()+"\n")
	clock.Advance(3 * time.Second)
	code, m = send(good)
	wantStatus(t, code, 200, m)

	// A malformed list at start: the host does not start.
	writeFile(t, listFile, "# partners\n0xgood123abc...\n")
	d2 := t.TempDir()
	_, err := host.New(context.Background(), factory("offline/demo"), host.WithDir(d2), host.WithCoDir(filepath.Join(d2, ".co")),
		host.WithLogger(quietLogger()), host.WithConfigFile(filepath.Join(dir, ".co", "host.yaml")))
	if !errors.Is(err, host.ErrConfig) || !strings.Contains(err.Error(), "white.txt line 2") || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("malformed list at start: %v, want ErrConfig naming the file, line 2 and why", err)
	}
}

// TestSeedListFiles: .co/whitelist.txt and .co/blacklist.txt are read
// when present, as the seed has them; a list file named in host.yaml that
// does not exist is an empty list with a warning, not a host refusing
// everyone.
func TestSeedListFiles(t *testing.T) {
	good, bad := newIdentity(t), newIdentity(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".co", "whitelist.txt"), good.Address()+"\n")
	writeFile(t, filepath.Join(dir, ".co", "blacklist.txt"), bad.Address()+"\n")
	h := startTrustHost(t, dir, host.WithTrust("strict"))
	code, m := postRaw(t, h.URL, signedInput(t, good, h.Address(), time.Now(), map[string]any{"prompt": "hi"}, nil))
	wantStatus(t, code, 200, m)
	code, m = postRaw(t, h.URL, signedInput(t, bad, h.Address(), time.Now(), map[string]any{"prompt": "hi"}, nil))
	wantError(t, code, 403, m, "blocked")

	d2 := t.TempDir()
	writeFile(t, filepath.Join(d2, ".co", "host.yaml"), "trust: careful\nwhitelist: missing.txt\n")
	var logs logBuffer
	h2 := startTrustHost(t, d2, host.WithLogger(logs.logger()))
	code, m = postRaw(t, h2.URL, signedInput(t, good, h2.Address(), time.Now(), map[string]any{"prompt": "hi"}, nil))
	wantStatus(t, code, 200, m)
	if l := logs.String(); !strings.Contains(l, "does not exist") || !strings.Contains(l, "missing.txt") {
		t.Fatalf("no warning about the missing list file: %s", l)
	}
}

// TestTrustOnboardingHTTP: invite code in the signed payload, payment from
// the credits ledger, refusals for a wrong code, a low payment and too few
// credits.
func TestTrustOnboardingHTTP(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".co", "host.yaml"), "trust:\n  onboard:\n    invite_code: [BETA2024]\n    payment: 10\n  default: deny\n")
	h := startTrustHost(t, dir)
	ann, ben := newIdentity(t), newIdentity(t)
	n := 0
	send := func(id *trust.Identity, fields map[string]any) (int, map[string]any) {
		n++ // same payload in the same second would be a replay
		fields["prompt"] = "hi #" + strconv.Itoa(n)
		return postRaw(t, h.URL, signedInput(t, id, h.Address(), time.Now(), fields, nil))
	}
	code, m := send(ann, map[string]any{})
	wantError(t, code, 403, m, "onboarding required", "invite code")
	code, m = send(ann, map[string]any{"invite_code": "WRONG"})
	wantError(t, code, 403, m, "invalid invite code")
	code, m = send(ann, map[string]any{"invite_code": "BETA2024"})
	wantStatus(t, code, 200, m)
	code, m = send(ann, map[string]any{}) // a contact now
	wantStatus(t, code, 200, m)

	code, m = send(ben, map[string]any{"payment": 5})
	wantError(t, code, 403, m, "below the required amount")
	code, m = send(ben, map[string]any{"payment": 10})
	wantError(t, code, 403, m, "insufficient credits")
	// The operator grants credits in the host's database (as `agenthost
	// credits grant` does, from another connection).
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, ".co", sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr := st.Trust(nil)
	if _, err := tr.Grant(context.Background(), ben.Address(), 15); err != nil {
		t.Fatal(err)
	}
	code, m = send(ben, map[string]any{"payment": 10})
	wantStatus(t, code, 200, m)
	if b, _ := tr.Balance(context.Background(), ben.Address()); b != 5 {
		t.Fatalf("balance after paying 10 of 15 = %d", b)
	}
	if l, _ := tr.Level(context.Background(), ben.Address()); l != policy.LevelContact {
		t.Fatalf("ben's stored level = %q", l)
	}
}

// TestTrustOnboardingWS: ONBOARD_REQUIRED, a refused ONBOARD_SUBMIT, then
// ONBOARD_SUCCESS, after which the pending CONNECT and INPUT go on.
func TestTrustOnboardingWS(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".co", "host.yaml"), "trust:\n  onboard:\n    invite_code: [BETA2024]\n    payment: 3\n  default: deny\n")
	h := startTrustHost(t, dir)
	id := newIdentity(t)
	w := dialTrustWS(t, h)
	w.send(signedFrame(t, id, h.Address(), "CONNECT", nil, nil))
	req := w.read()
	methods, _ := json.Marshal(req["methods"])
	if req["type"] != "ONBOARD_REQUIRED" || req["identity"] != id.Address() || string(methods) != `["invite_code","payment"]` || req["payment_amount"] != 3.0 {
		t.Fatalf("want ONBOARD_REQUIRED, got %v", req)
	}
	w.send(signedFrame(t, id, h.Address(), "ONBOARD_SUBMIT", map[string]any{"invite_code": "nope"}, nil))
	if e := w.read(); e["type"] != "ERROR" || e["code"] != "forbidden" || !strings.Contains(e["message"].(string), "invalid invite code") {
		t.Fatalf("wrong code: %v", e)
	}
	w.send(signedFrame(t, id, h.Address(), "ONBOARD_SUBMIT", map[string]any{"payment": 3}, nil))
	if e := w.read(); e["type"] != "ERROR" || !strings.Contains(e["message"].(string), "insufficient credits") {
		t.Fatalf("payment without credits: %v", e)
	}
	w.send(map[string]any{"type": "ONBOARD_SUBMIT", "payload": map[string]any{"invite_code": "BETA2024"}})
	if e := w.read(); e["type"] != "ERROR" || e["code"] != "unauthorized" {
		t.Fatalf("unsigned submit: %v", e)
	}
	w.send(signedFrame(t, id, h.Address(), "ONBOARD_SUBMIT", map[string]any{"invite_code": "BETA2024"}, nil))
	ok := w.read()
	if ok["type"] != "ONBOARD_SUCCESS" || ok["identity"] != id.Address() || ok["level"] != "contact" {
		t.Fatalf("want ONBOARD_SUCCESS, got %v", ok)
	}
	c := w.read()
	if c["type"] != "CONNECTED" || c["status"] != "new" {
		t.Fatalf("the pending CONNECT did not continue: %v", c)
	}
	// The policy refuses anonymous callers: frames after CONNECT are
	// signed and bound to the connection.
	w.send(map[string]any{"type": "INPUT", "prompt": "use add on 2 and 3"})
	if e := w.read(); e["type"] != "ERROR" || e["code"] != "unauthorized" {
		t.Fatalf("unsigned INPUT under a policy that refuses anonymous callers: %v", e)
	}
	w.send(boundFrame(t, id, h.Address(), c, 1, "INPUT", map[string]any{"prompt": "use add on 2 and 3"}, nil))
	if out, _ := w.until("OUTPUT", "ERROR"); out["type"] != "OUTPUT" || !strings.Contains(out["result"].(string), "5") {
		t.Fatalf("run after onboarding: %v", out)
	}

	// A signed INPUT without CONNECT, pending onboarding by payment.
	payer := newIdentity(t)
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, ".co", sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Trust(nil).Grant(context.Background(), payer.Address(), 3)
	w2 := dialTrustWS(t, h)
	w2.send(signedFrame(t, payer, h.Address(), "INPUT", map[string]any{"prompt": "use add on 1 and 1"}, nil))
	if r := w2.read(); r["type"] != "ONBOARD_REQUIRED" {
		t.Fatalf("want ONBOARD_REQUIRED, got %v", r)
	}
	w2.send(signedFrame(t, payer, h.Address(), "ONBOARD_SUBMIT", map[string]any{"payment": 3}, nil))
	if r := w2.read(); r["type"] != "ONBOARD_SUCCESS" {
		t.Fatalf("payment: %v", r)
	}
	if out, _ := w2.until("OUTPUT", "ERROR"); out["type"] != "OUTPUT" || !strings.Contains(out["result"].(string), "2") {
		t.Fatalf("pending INPUT after onboarding: %v", out)
	}
}

// TestTrustWSVerification: CONNECT frames are verified like POST bodies.
func TestTrustWSVerification(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	id := newIdentity(t)
	frame := signedFrame(t, id, h.Address(), "CONNECT", nil, nil)
	w := dialTrustWS(t, h)
	w.send(frame)
	if c := w.read(); c["type"] != "CONNECTED" {
		t.Fatalf("signed CONNECT: %v", c)
	}
	w.send(frame)
	if e := w.read(); e["type"] != "ERROR" || e["code"] != "unauthorized" || !strings.Contains(e["message"].(string), "already used") {
		t.Fatalf("replayed CONNECT: %v", e)
	}
	w.send(signedFrame(t, id, newIdentity(t).Address(), "CONNECT", nil, nil))
	if e := w.read(); e["type"] != "ERROR" || !strings.Contains(e["message"].(string), "wrong recipient") {
		t.Fatalf("CONNECT to another agent: %v", e)
	}
	forged := signedFrame(t, id, h.Address(), "CONNECT", nil, nil)
	forged["from"] = newIdentity(t).Address()
	w.send(forged)
	if e := w.read(); e["type"] != "ERROR" || !strings.Contains(e["message"].(string), "invalid signature") {
		t.Fatalf("forged CONNECT: %v", e)
	}
}

// TestTrustRelayedFrames: frames a relay feeds to ServeFrames are verified
// like WebSocket frames, so a relayed caller is the signer and replays are
// refused; a signed INPUT's digest covers its attachments.
func TestTrustRelayedFrames(t *testing.T) {
	h := startTrustHost(t, t.TempDir(), host.WithTrust("strict"))
	id := newIdentity(t)
	// Whitelist the caller through the host database, as `agenthost trust
	// promote` does.
	st, err := sqlite.Open(context.Background(), filepath.Join(h.dir, ".co", sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := policy.ApplyAdmin(context.Background(), st.Trust(nil), policy.AdminOp{Action: policy.AdminPromote, Address: id.Address()}); err != nil {
		t.Fatal(err)
	}
	mc := &memConn{in: make(chan []byte, 4), out: make(chan []byte, 256), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.ServeFrames(ctx, mc, host.ConnInfo{Transport: "relay"}) }()
	defer func() { close(mc.done); cancel(); <-done }()
	next := func(typs ...string) map[string]any {
		for {
			var m map[string]any
			json.Unmarshal(<-mc.out, &m)
			for _, typ := range typs {
				if m["type"] == typ {
					return m
				}
			}
		}
	}
	send := func(v any) { b, _ := json.Marshal(v); mc.in <- b }

	connect := signedFrame(t, id, h.Address(), "CONNECT", nil, nil)
	send(connect)
	if m := next("CONNECTED", "ERROR"); m["type"] != "CONNECTED" {
		t.Fatalf("relayed signed CONNECT: %v", m)
	}
	send(connect)
	if m := next("ERROR", "CONNECTED"); m["code"] != "unauthorized" {
		t.Fatalf("relayed replay: %v", m)
	}
	imgs := []string{"data:image/png;base64,iVBORw0KGgo="}
	ij, _ := json.Marshal(imgs)
	digest, _ := trust.BodyDigest(nil, ij, nil)
	in := signedFrame(t, id, h.Address(), "INPUT", map[string]any{"digest": digest, "prompt": "use add on 2 and 2"}, map[string]any{
		"images": []string{"data:image/png;base64,AAAAAAAAAAA="}})
	send(in)
	if m := next("ERROR", "OUTPUT"); m["type"] != "ERROR" || !strings.Contains(m["message"].(string), "digest") {
		t.Fatalf("tampered images: %v", m)
	}
	in = signedFrame(t, id, h.Address(), "INPUT", map[string]any{"digest": digest, "n": 2, "prompt": "use add on 2 and 2"}, map[string]any{"images": imgs})
	send(in)
	if m := next("ERROR", "OUTPUT"); m["type"] != "OUTPUT" {
		t.Fatalf("signed INPUT with its images: %v", m)
	}
}
