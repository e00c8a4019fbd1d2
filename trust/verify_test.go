package trust

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/testutil"
)

var t0 = time.Unix(1_700_000_000, 0)

// testIdentity returns a fixed identity; n picks one of several.
func testIdentity(t testing.TB, n byte) *Identity {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = n + byte(i)
	}
	id, err := IdentityFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// message builds a signed message: the payload JSON text is signed in form f
// (encoded from the text, so nested key order is the text's), and extra
// outer fields are added.
func message(t testing.TB, id *Identity, payload string, f Form, extra map[string]string) []byte {
	t.Helper()
	canon, err := CanonicalForm(json.RawMessage(payload), f)
	if err != nil {
		t.Fatal(err)
	}
	sig := hex.EncodeToString(id.Sign(canon))
	var b strings.Builder
	fmt.Fprintf(&b, `{"payload":%s,"from":%q,"signature":%q`, payload, id.Address(), sig)
	for k, v := range extra {
		fmt.Fprintf(&b, ",%q:%s", k, v)
	}
	b.WriteString("}")
	return []byte(b.String())
}

func TestVerifyVectors(t *testing.T) {
	v := loadVectors(t)
	pub, err := ParseAddress(v.Address)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := hex.DecodeString(v.Seed)
	if id, _ := IdentityFromSeed(seed); id.Address() != v.Address {
		t.Fatalf("vector key %s does not match its address %s", id.Address(), v.Address)
	}
	for _, c := range v.Cases {
		tree, err := parseJSON([]byte(c.Input))
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		for _, name := range []string{"python", "python_utf8", "javascript"} {
			sigHex := c.Signatures[name]
			if sigHex == "" {
				continue
			}
			sig, _ := hex.DecodeString(sigHex)
			form, _, err := checkSignature(pub, sig, tree, []byte(c.Input))
			if err != nil {
				t.Errorf("%s: node's %s signature did not verify", c.Name, name)
				continue
			}
			signed, _ := encodeForm(nil, tree, form)
			if !ed25519.Verify(pub, signed, sig) {
				t.Errorf("%s: reported form %s is not what was signed", c.Name, form)
			}
		}
		if c.Name == "announce" {
			msg := strings.TrimSuffix(c.Input, "}") + `,"signature":"` + c.Signatures["relay"] + `"}`
			addr, err := VerifyAnnounce([]byte(msg), t0, 0)
			if err != nil || addr != v.Address {
				t.Errorf("announce vector: %q, %v", addr, err)
			}
		}
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	host := testIdentity(t, 100)
	alice := testIdentity(t, 1)
	mallory := testIdentity(t, 2)
	ts := t0.Unix()
	p := func(extra string) string {
		return fmt.Sprintf(`{"prompt":"hi <b>&</b>","to":%q,"timestamp":%d%s}`, host.Address(), ts, extra)
	}
	session := `{"session_id":"s1","messages":[{"role":"user","text":"héllo"}],"turn":1}`
	images := `["data:image/png;base64,AAAA"]`
	digest, err := BodyDigest(json.RawMessage(session), json.RawMessage(images), nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := message(t, alice, p(""), FormPython, nil)
	forged = []byte(strings.Replace(string(forged), alice.Address(), mallory.Address(), 1))

	for _, tc := range []struct {
		name    string
		msg     []byte
		cfg     func(*VerifierConfig)
		clock   time.Duration // clock offset from t0
		want    error
		wantFmt Form
	}{
		{name: "python form", msg: message(t, alice, p(""), FormPython, nil), wantFmt: FormPython},
		{name: "utf8 form", msg: message(t, alice, p(`,"text":"你好 😀"`), FormPythonUTF8, nil), wantFmt: FormPythonUTF8},
		{name: "javascript form", msg: message(t, alice, p(`,"opts":{"z":1,"a":[{"y":1,"b":2}]}`), FormJavaScript, nil), wantFmt: FormJavaScript},
		{name: "float timestamp", msg: message(t, alice, fmt.Sprintf(`{"prompt":"x","timestamp":%d.25}`, ts), FormPython, nil), wantFmt: FormPython},
		{name: "0x upper-case signature", msg: []byte(strings.Replace(string(message(t, alice, p(`,"n":1`), FormPython, nil)), `"signature":"`, `"signature":"0x`, 1)), wantFmt: FormPython},
		{name: "upper-case to", msg: message(t, alice, fmt.Sprintf(`{"to":"0x%s","timestamp":%d}`, strings.ToUpper(host.Address()[2:]), ts), FormPython, nil), wantFmt: FormPython},
		{name: "no to", msg: message(t, alice, fmt.Sprintf(`{"prompt":"x","timestamp":%d}`, ts), FormPython, nil), wantFmt: FormPython},
		{name: "no to, required", msg: message(t, alice, fmt.Sprintf(`{"prompt":"x","timestamp":%d}`, ts), FormPython, nil), cfg: func(c *VerifierConfig) { c.RequireRecipient = true }, want: ErrWrongRecipient},
		{name: "wrong to", msg: message(t, alice, fmt.Sprintf(`{"to":%q,"timestamp":%d}`, mallory.Address(), ts), FormPython, nil), want: ErrWrongRecipient},
		{name: "to not a string", msg: message(t, alice, fmt.Sprintf(`{"to":1,"timestamp":%d}`, ts), FormPython, nil), want: ErrWrongRecipient},
		{name: "unsigned plain", msg: []byte(`{"prompt":"hi"}`), want: ErrUnsigned},
		{name: "payload without signature", msg: []byte(fmt.Sprintf(`{"payload":{"prompt":"hi"},"from":%q}`, alice.Address())), want: ErrMalformed},
		{name: "signature without from", msg: []byte(`{"payload":{"prompt":"hi"},"signature":"00"}`), want: ErrMalformed},
		{name: "payload not object", msg: []byte(fmt.Sprintf(`{"payload":"x","from":%q,"signature":"%s"}`, alice.Address(), strings.Repeat("0", 128))), want: ErrMalformed},
		{name: "from not address", msg: []byte(fmt.Sprintf(`{"payload":{},"from":"0xabc","signature":"%s"}`, strings.Repeat("0", 128))), want: ErrMalformed},
		{name: "short signature", msg: []byte(fmt.Sprintf(`{"payload":{},"from":%q,"signature":"abcd"}`, alice.Address())), want: ErrBadSignature},
		{name: "not json", msg: []byte(`{"payload":`), want: ErrMalformed},
		{name: "duplicate keys", msg: []byte(`{"payload":{"a":1,"a":2},"from":"x","signature":"y"}`), want: ErrMalformed},
		{name: "tampered payload", msg: []byte(strings.Replace(string(message(t, alice, p(""), FormPython, nil)), `"hi `, `"HI `, 1)), want: ErrBadSignature},
		{name: "forged from", msg: forged, want: ErrBadSignature},
		{name: "missing timestamp", msg: message(t, alice, `{"prompt":"x"}`, FormPython, nil), want: ErrMalformed},
		{name: "string timestamp", msg: message(t, alice, `{"prompt":"x","timestamp":"1700000000"}`, FormPython, nil), want: ErrMalformed},
		{name: "huge timestamp", msg: message(t, alice, `{"prompt":"x","timestamp":1e300}`, FormPython, nil), want: ErrExpired},
		{name: "expired", msg: message(t, alice, p(""), FormPython, nil), clock: 301 * time.Second, want: ErrExpired},
		{name: "edge of window", msg: message(t, alice, p(""), FormPython, nil), clock: 300 * time.Second, wantFmt: FormPython},
		{name: "future", msg: message(t, alice, p(""), FormPython, nil), clock: -301 * time.Second, want: ErrExpired},
		{name: "narrow window", msg: message(t, alice, p(""), FormPython, nil), clock: 61 * time.Second, cfg: func(c *VerifierConfig) { c.Window = time.Minute }, want: ErrExpired},
		{name: "digest", msg: message(t, alice, p(`,"digest":"`+digest+`"`), FormPython, map[string]string{"session": session, "images": images}), wantFmt: FormPython},
		{name: "digest, reformatted fields", msg: message(t, alice, p(`,"digest":"`+strings.ToUpper(digest[:7])+digest[7:]+`"`), FormPython, map[string]string{"images": " [ \"data:image/png;base64,AAAA\" ] ", "session": `{"turn":1,"session_id":"s1","messages":[{"text":"h\u00e9llo","role":"user"}]}`, "files": "null"}), wantFmt: FormPython},
		{name: "digest, tampered image", msg: message(t, alice, p(`,"digest":"`+digest+`"`), FormPython, map[string]string{"session": session, "images": `["data:image/png;base64,BBBB"]`}), want: ErrDigestMismatch},
		{name: "digest, added file", msg: message(t, alice, p(`,"digest":"`+digest+`"`), FormPython, map[string]string{"session": session, "images": images, "files": `[{"name":"x","data":"data:,x"}]`}), want: ErrDigestMismatch},
		{name: "digest, stripped session", msg: message(t, alice, p(`,"digest":"`+digest+`"`), FormPython, map[string]string{"images": images}), want: ErrDigestMismatch},
		{name: "digest not a string", msg: message(t, alice, p(`,"digest":5`), FormPython, nil), want: ErrDigestMismatch},
		{name: "no digest allowed", msg: message(t, alice, p(""), FormPython, map[string]string{"images": images}), wantFmt: FormPython},
		{name: "no digest, required", msg: message(t, alice, p(""), FormPython, map[string]string{"images": images}), cfg: func(c *VerifierConfig) { c.RequireDigest = true }, want: ErrDigestMismatch},
		{name: "no digest, required, nothing attached", msg: message(t, alice, p(""), FormPython, map[string]string{"session": "null"}), cfg: func(c *VerifierConfig) { c.RequireDigest = true }, wantFmt: FormPython},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := testutil.NewClock(t0.Add(tc.clock))
			cfg := VerifierConfig{Address: host.Address(), Now: clk.Now}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			v, err := NewVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m, err := v.Verify(ctx, tc.msg)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("Verify = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if m.From != alice.Address() || m.Form != tc.wantFmt {
				t.Errorf("From %s Form %s, want %s %s", m.From, m.Form, alice.Address(), tc.wantFmt)
			}
			var pl map[string]any
			if err := m.Decode(&pl); err != nil || pl["timestamp"] == nil {
				t.Errorf("payload %s: %v", m.Payload, err)
			}
			// Single use.
			if _, err := v.Verify(ctx, tc.msg); !errors.Is(err, ErrReplay) {
				t.Errorf("replay: %v, want ErrReplay", err)
			}
		})
	}
}

func TestReplayAcrossEncodings(t *testing.T) {
	ctx := context.Background()
	host, alice := testIdentity(t, 100), testIdentity(t, 1)
	v, _ := NewVerifier(VerifierConfig{Address: host.Address(), Now: func() time.Time { return t0 }})
	payload := fmt.Sprintf(`{"prompt":"café","timestamp":%d}`, t0.Unix())
	first := message(t, alice, payload, FormPython, nil)
	if _, err := v.Verify(ctx, first); err != nil {
		t.Fatal(err)
	}
	// The same payload re-encoded, re-spaced, with a 0x signature: still a replay.
	env, _ := ParseEnvelope(first)
	again := fmt.Sprintf(`{ "signature" : "0x%s", "payload": {"timestamp":%d, "prompt":"caf\u00e9"}, "from": "0x%s"}`,
		strings.ToUpper(env.Signature), t0.Unix(), strings.ToUpper(alice.Address()[2:]))
	if _, err := v.Verify(ctx, []byte(again)); !errors.Is(err, ErrReplay) {
		t.Fatalf("re-encoded replay: %v", err)
	}
}

type failingLedger struct{}

func (failingLedger) Seen(context.Context, string, time.Time) (bool, error) {
	return false, errors.New("disk full")
}

func TestLedgerFailureFailsClosed(t *testing.T) {
	host, alice := testIdentity(t, 100), testIdentity(t, 1)
	v, _ := NewVerifier(VerifierConfig{Address: host.Address(), Ledger: failingLedger{}, Now: func() time.Time { return t0 }})
	_, err := v.Verify(context.Background(), message(t, alice, fmt.Sprintf(`{"timestamp":%d}`, t0.Unix()), FormPython, nil))
	if err == nil || errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Verify = %v, want a non-auth error", err)
	}
}

func TestNewVerifierNeedsAddress(t *testing.T) {
	if _, err := NewVerifier(VerifierConfig{}); err == nil {
		t.Fatal("no error without an address")
	}
}

func TestSignRoundTrip(t *testing.T) {
	ctx := context.Background()
	host, alice := testIdentity(t, 100), testIdentity(t, 1)
	v, _ := NewVerifier(VerifierConfig{Address: host.Address(), Now: func() time.Time { return t0 }})
	env, err := Sign(alice, NewPayload(host.Address(), t0, map[string]any{"prompt": "<é> & 😀", "n": 1.5}))
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json escapes <>& in RawMessage when marshalling: still verifies.
	body, err := json.Marshal(struct {
		Envelope
		Images []string `json:"images"`
	}{env, []string{"data:,x"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.Verify(ctx, body)
	if err != nil {
		t.Fatalf("Verify(%s): %v", body, err)
	}
	if m.Form != FormPython || m.To != host.Address() || !m.Timestamp.Equal(t0) {
		t.Errorf("got %+v", m)
	}
	parsed, err := ParseEnvelope(body)
	if err != nil || parsed.From != alice.Address() || parsed.Signature != env.Signature {
		t.Errorf("ParseEnvelope = %+v, %v", parsed, err)
	}
	for _, bad := range []any{"text", []int{1}, nil, make(chan int)} {
		if _, err := Sign(alice, bad); err == nil {
			t.Errorf("Sign(%v) succeeded", bad)
		}
	}
}

func TestVerifyHeaders(t *testing.T) {
	ctx := context.Background()
	host, alice, other := testIdentity(t, 100), testIdentity(t, 1), testIdentity(t, 2)
	newV := func() *Verifier {
		v, _ := NewVerifier(VerifierConfig{Address: host.Address(), Now: func() time.Time { return t0 }})
		return v
	}
	h := SignHeaders(alice, "get", "/sessions/abc", host.Address(), t0)
	// The signed bytes are the canonical form of the five fields.
	sig, _ := hex.DecodeString(h.Get(HeaderSignature))
	want := `{"method":"GET","nonce":"` + h.Get(HeaderNonce) + `","path":"/sessions/abc","timestamp":1700000000,"to":"` + host.Address() + `"}`
	if !ed25519.Verify(alice.PublicKey(), []byte(want), sig) {
		t.Fatal("header signature is not over the canonical form")
	}
	v := newV()
	m, err := v.VerifyHeaders(ctx, h, "GET", "/sessions/abc")
	if err != nil || m.From != alice.Address() || m.To != host.Address() {
		t.Fatalf("VerifyHeaders = %+v, %v", m, err)
	}
	// Single use, always.
	if _, err := v.VerifyHeaders(ctx, h, "GET", "/sessions/abc"); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	// Made for another agent, or naming none: refused.
	forOther := SignHeaders(alice, "GET", "/sessions", other.Address(), t0)
	if _, err := newV().VerifyHeaders(ctx, forOther, "GET", "/sessions"); !errors.Is(err, ErrWrongRecipient) {
		t.Errorf("other recipient: %v", err)
	}
	forOther.Set(HeaderTo, host.Address())
	if _, err := newV().VerifyHeaders(ctx, forOther, "GET", "/sessions"); !errors.Is(err, ErrBadSignature) {
		t.Errorf("recipient header rewritten: %v", err)
	}
	noTo := SignHeaders(alice, "GET", "/sessions", host.Address(), t0)
	noTo.Del(HeaderTo)
	if _, err := newV().VerifyHeaders(ctx, noTo, "GET", "/sessions"); !errors.Is(err, ErrWrongRecipient) {
		t.Errorf("no recipient: %v", err)
	}
	v = newV()
	if _, err := v.VerifyHeaders(ctx, h, "GET", "/sessions/other"); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other path: %v", err)
	}
	if _, err := v.VerifyHeaders(ctx, h, "DELETE", "/sessions/abc"); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other method: %v", err)
	}
	if _, err := v.VerifyHeaders(ctx, nil, "GET", "/sessions"); !errors.Is(err, ErrUnsigned) {
		t.Errorf("no headers: %v", err)
	}
	partial := h.Clone()
	partial.Del(HeaderTimestamp)
	if _, err := v.VerifyHeaders(ctx, partial, "GET", "/sessions/abc"); !errors.Is(err, ErrMalformed) {
		t.Errorf("partial headers: %v", err)
	}
	old := SignHeaders(alice, "GET", "/sessions", host.Address(), t0.Add(-10*time.Minute))
	if _, err := v.VerifyHeaders(ctx, old, "GET", "/sessions"); !errors.Is(err, ErrExpired) {
		t.Errorf("old headers: %v", err)
	}
	bad := h.Clone()
	bad.Set(HeaderTimestamp, "soon")
	if _, err := v.VerifyHeaders(ctx, bad, "GET", "/sessions/abc"); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad timestamp: %v", err)
	}
	// A decoded non-ASCII path, signed escaped (Python) or as UTF-8 (JS).
	uh := SignHeaders(alice, "GET", "/sessions/café", host.Address(), t0)
	if _, err := v.VerifyHeaders(ctx, uh, "GET", "/sessions/café"); err != nil {
		t.Errorf("non-ASCII path: %v", err)
	}
	uh.Del(HeaderNonce)
	js := []byte(`{"method":"GET","path":"/sessions/café","timestamp":1700000000,"to":"` + host.Address() + `"}`)
	uh.Set(HeaderSignature, hex.EncodeToString(alice.Sign(js)))
	if m, err := v.VerifyHeaders(ctx, uh, "GET", "/sessions/café"); err != nil || m.Form != FormPythonUTF8 {
		t.Errorf("UTF-8 signed path: %v", err)
	}
}

func TestAnnounce(t *testing.T) {
	id, other := testIdentity(t, 7), testIdentity(t, 8)
	msg := map[string]any{"type": "ANNOUNCE", "timestamp": t0.Unix(), "summary": "Je traduis — 你好", "endpoints": []string{"http://x:8000"}, "relay": nil}
	signed, err := SignAnnounce(id, msg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := VerifyAnnounce(signed, t0.Add(time.Minute), 0)
	if err != nil || addr != id.Address() {
		t.Fatalf("VerifyAnnounce = %q, %v (%s)", addr, err, signed)
	}
	// What the Python relay recomputes: json.dumps(msg minus signature, sort_keys=True).
	var back map[string]any
	_ = json.Unmarshal(signed, &back)
	sig, _ := hex.DecodeString(back["signature"].(string))
	want := fmt.Sprintf(`{"address": %q, "endpoints": ["http://x:8000"], "relay": null, "summary": "Je traduis \u2014 \u4f60\u597d", "timestamp": 1700000000, "type": "ANNOUNCE"}`, id.Address())
	if !ed25519.Verify(id.PublicKey(), []byte(want), sig) {
		t.Errorf("announce signature is not over the relay form")
	}
	if _, err := VerifyAnnounce(signed, t0.Add(10*time.Minute), 0); !errors.Is(err, ErrExpired) {
		t.Errorf("stale announce: %v", err)
	}
	tampered := strings.Replace(string(signed), "Je traduis", "Je vole", 1)
	if _, err := VerifyAnnounce([]byte(tampered), t0, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered announce: %v", err)
	}
	stolen := strings.Replace(string(signed), id.Address(), other.Address(), 1)
	if _, err := VerifyAnnounce([]byte(stolen), t0, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("announce for another address: %v", err)
	}
	msg["address"] = other.Address()
	if _, err := SignAnnounce(id, msg); err == nil {
		t.Error("signed an announce for another address")
	}
	if _, err := VerifyAnnounce([]byte(`{"address":"x"}`), t0, 0); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned announce: %v", err)
	}
}

func TestBodyDigest(t *testing.T) {
	a, _ := BodyDigest(json.RawMessage(`{"b":1,"a":"é"}`), nil, json.RawMessage(`null`))
	b, _ := BodyDigest(json.RawMessage(" {\"a\":\"\\u00e9\", \"b\":1} "), json.RawMessage(""), nil)
	c, _ := BodyDigest(json.RawMessage(`{"a":"é","b":2}`), nil, nil)
	empty, _ := BodyDigest(nil, nil, nil)
	if a != b || a == c || !strings.HasPrefix(a, "sha256:") || len(a) != 7+64 {
		t.Errorf("digests: %s %s %s", a, b, c)
	}
	// The digest of nothing is the hash of "{}".
	if empty != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" {
		t.Errorf("empty digest %s", empty)
	}
	if _, err := BodyDigest(json.RawMessage(`{`), nil, nil); err == nil {
		t.Error("bad JSON accepted")
	}
}

func TestMemoryLedger(t *testing.T) {
	ctx := context.Background()
	clk := testutil.NewClock(t0)
	l := NewMemoryLedger(clk.Now)
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			seen, err := l.Seen(ctx, "d", t0.Add(time.Minute))
			if err == nil && !seen {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Fatalf("%d callers saw a fresh digest, want 1", fresh.Load())
	}
	clk.Advance(2 * time.Minute)
	if seen, _ := l.Seen(ctx, "d", clk.Now().Add(time.Minute)); seen {
		t.Error("expired digest still seen")
	}
	for i := range 3000 {
		_, _ = l.Seen(ctx, fmt.Sprint(i), clk.Now().Add(time.Second))
	}
	clk.Advance(time.Hour)
	for i := range 3000 {
		_, _ = l.Seen(ctx, fmt.Sprint("n", i), clk.Now().Add(time.Second))
	}
	if l.Len() > 4000 {
		t.Errorf("ledger kept %d entries, expired ones were not pruned", l.Len())
	}
}
