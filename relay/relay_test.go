package relay

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/trust"
)

func TestParseHeader(t *testing.T) {
	cases := []struct {
		in   string
		want Header
		err  bool
	}{
		{in: `{"type":"INPUT","prompt":"hi","to":"0xab"}`, want: Header{Type: "INPUT", To: "0xab"}},
		{in: ` { "type" : "CONNECT" , "session_id" : "s-1", "session": {"session_id": "inner", "x": [1,{"session_id":"deep"}]} } `,
			want: Header{Type: "CONNECT", SessionID: "s-1", HasSessionID: true, NestedSessionID: "inner"}},
		{in: `{"type":"a\"b","session_id":null}`, want: Header{Type: `a"b`, HasSessionID: true}},
		{in: `{"type":"x","type":"y"}`, want: Header{Type: "y"}},                        // last wins, as in encoding/json
		{in: `{"prompt":"}{\"type\":\"EVIL\"}","type":"OK"}`, want: Header{Type: "OK"}}, // strings hide braces
		{in: `{}`, want: Header{}},
		{in: `[1,2]`, err: true},
		{in: `"str"`, err: true},
		{in: `{"a":1`, err: true},
		{in: ``, err: true},
	}
	for _, c := range cases {
		h, err := ParseHeader([]byte(c.in))
		if (err != nil) != c.err {
			t.Errorf("ParseHeader(%s) error = %v, want error %v", c.in, err, c.err)
			continue
		}
		if err == nil && h != c.want {
			t.Errorf("ParseHeader(%s) = %+v, want %+v", c.in, h, c.want)
		}
	}
}

func TestWithSessionID(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"type":"INPUT","prompt":"hi"}`, `{"session_id":"r1","type":"INPUT","prompt":"hi"}`},
		{`{"session_id":"r1","type":"INPUT"}`, `{"session_id":"r1","type":"INPUT"}`}, // unchanged, same bytes
		{`{"type":"A", "session_id":"other", "x": {"session_id":"keep"}}`, `{"session_id":"r1","type":"A","x": {"session_id":"keep"}}`},
		{`{"session_id":1,"session_id":"r1"}`, `{"session_id":"r1"}`},
		{`{}`, `{"session_id":"r1"}`},
		{` {"a" : [1, 2] } `, `{"session_id":"r1","a" : [1, 2]}`},
	}
	for _, c := range cases {
		got, err := WithSessionID([]byte(c.in), "r1")
		if err != nil || string(got) != c.want {
			t.Errorf("WithSessionID(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("WithSessionID(%s) = %s: not JSON", c.in, got)
		}
	}
	same := []byte(`{"session_id":"r1","type":"X"}`)
	if got, _ := WithSessionID(same, "r1"); &got[0] != &same[0] {
		t.Error("a frame already carrying the id was copied")
	}
}

func TestValidSessionID(t *testing.T) {
	for _, s := range []string{"a", "550e8400-e29b-41d4-a716-446655440000", "x.y_z:1", strings.Repeat("a", 128)} {
		if !ValidSessionID(s) {
			t.Errorf("ValidSessionID(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a b", "é", `a"`, strings.Repeat("a", 129), "a/b"} {
		if ValidSessionID(s) {
			t.Errorf("ValidSessionID(%q) = true", s)
		}
	}
}

func TestNormalizeRelayURL(t *testing.T) {
	cases := map[string]string{
		"wss://oo.openonion.ai":                 "wss://oo.openonion.ai",
		"wss://oo.openonion.ai/":                "wss://oo.openonion.ai",
		"wss://oo.openonion.ai/ws/announce":     "wss://oo.openonion.ai",
		"wss://oo.openonion.ai/ws/announce/":    "wss://oo.openonion.ai",
		"ws://127.0.0.1:9/ws/input":             "ws://127.0.0.1:9",
		"https://relay.example/prefix/ws":       "wss://relay.example/prefix",
		"http://relay.example:8765?x=1#frag":    "ws://relay.example:8765",
		" wss://relay.example/base/ws/announce": "wss://relay.example/base",
	}
	for in, want := range cases {
		got, err := NormalizeRelayURL(in)
		if err != nil || got != want {
			t.Errorf("NormalizeRelayURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "relay.example", "ftp://x", "wss://"} {
		if _, err := NormalizeRelayURL(bad); err == nil {
			t.Errorf("NormalizeRelayURL(%q) succeeded", bad)
		}
	}
	if got := HTTPBase("wss://r.example/p"); got != "https://r.example/p" {
		t.Errorf("HTTPBase = %q", got)
	}
}

type pythonVectors struct {
	SeedHex string   `json:"seed_hex"`
	Address string   `json:"address"`
	Now     int64    `json:"now"`
	Frames  []string `json:"frames"`
}

func loadVectors(t testing.TB) pythonVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/announce_python.json")
	if err != nil {
		t.Fatal(err)
	}
	var v pythonVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifyPythonAnnounce checks ANNOUNCEs signed by the reference agent's
// code path (testdata/gen_announce.py): non-ASCII text, a null relay, floats
// and nested profile objects.
func TestVerifyPythonAnnounce(t *testing.T) {
	v := loadVectors(t)
	now := time.Unix(v.Now, 0)
	for i, f := range v.Frames {
		a, err := VerifyAnnounce([]byte(f), now, DefaultClockSkew)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if a.Address != v.Address || a.Timestamp != 1760000000 {
			t.Errorf("frame %d: got %s at %d", i, a.Address, a.Timestamp)
		}
		// One changed byte anywhere in the signed part breaks it.
		tampered := strings.Replace(f, "translat", "trans1at", 1)
		if tampered == f {
			tampered = strings.Replace(f, "Traduzco", "Traduzc0", 1)
		}
		if _, err := VerifyAnnounce([]byte(tampered), now, DefaultClockSkew); !isReason(err, ReasonSignature) {
			t.Errorf("frame %d tampered: err = %v, want bad signature", i, err)
		}
	}
	a, _ := VerifyAnnounce([]byte(v.Frames[1]), now, DefaultClockSkew)
	var p Profile
	if err := json.Unmarshal(a.Profile, &p); err != nil || p.Alias != "translator" || len(p.Tools) != 2 {
		t.Errorf("profile = %s (%v)", a.Profile, err)
	}
	if a.Relay != "" || len(a.Endpoints) != 0 {
		t.Errorf("relay %q endpoints %v", a.Relay, a.Endpoints)
	}
}

func isReason(err error, reason string) bool {
	var ae *AnnounceError
	return errors.As(err, &ae) && ae.Reason == reason
}

func testIdentity(t testing.TB, b byte) *trust.Identity {
	t.Helper()
	id, err := trust.IdentityFromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestBuildVerifyAnnounce(t *testing.T) {
	id := testIdentity(t, 7)
	now := time.Unix(1_800_000_000, 0)
	info := AnnounceInfo{
		Summary:   strings.Repeat("é", MaxSummaryChars+50), // cut to the limit
		Endpoints: []string{"http://10.0.0.2:8000"},
		Profile:   &Profile{Alias: "a", Tools: []string{"t"}, Examples: []string{"do <this> & that"}},
	}
	frame, err := BuildAnnounce(id, info, "wss://relay.example", now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := VerifyAnnounce(frame, now.Add(10*time.Second), DefaultClockSkew)
	if err != nil {
		t.Fatal(err)
	}
	if a.Address != id.Address() || len([]rune(a.Summary)) != MaxSummaryChars || a.Relay != "wss://relay.example" {
		t.Errorf("announce = %+v", a)
	}

	// Stale and future timestamps.
	for _, d := range []time.Duration{-DefaultClockSkew - 2*time.Second, DefaultClockSkew + 2*time.Second} {
		if _, err := VerifyAnnounce(frame, now.Add(d), DefaultClockSkew); !isReason(err, ReasonStale) {
			t.Errorf("now%+v: err = %v, want stale", d, err)
		}
	}

	// Another key signing for id's address.
	other := testIdentity(t, 8)
	forged := map[string]any{}
	json.Unmarshal(frame, &forged)
	delete(forged, "signature")
	canon, _ := trust.CanonicalForm(forged, trust.FormRelay)
	forged["signature"] = hex.EncodeToString(other.Sign(canon))
	fb, _ := json.Marshal(forged)
	if _, err := VerifyAnnounce(fb, now, DefaultClockSkew); !isReason(err, ReasonSignature) {
		t.Errorf("impersonation: err = %v, want bad signature", err)
	}

	// Limits a signer could exceed.
	tooLong := map[string]any{"type": TypeAnnounce, "address": id.Address(), "timestamp": now.Unix(),
		"summary": strings.Repeat("x", MaxSummaryChars+1), "endpoints": []string{}}
	tb, _ := trust.SignAnnounce(id, tooLong)
	if _, err := VerifyAnnounce(tb, now, DefaultClockSkew); !isReason(err, ReasonSummary) {
		t.Errorf("long summary: err = %v", err)
	}
	floatTS := map[string]any{"type": TypeAnnounce, "address": id.Address(), "timestamp": float64(now.Unix()) + 0.5}
	fl, _ := trust.SignAnnounce(id, floatTS)
	if _, err := VerifyAnnounce(fl, now, DefaultClockSkew); !isReason(err, ReasonInvalidField) {
		t.Errorf("float timestamp: err = %v", err)
	}
	for _, bad := range []string{`{"type":"INPUT"}`, `not json`, `{"type":"ANNOUNCE","address":"0x12"}`} {
		if _, err := VerifyAnnounce([]byte(bad), now, DefaultClockSkew); err == nil {
			t.Errorf("VerifyAnnounce(%s) succeeded", bad)
		}
	}
	if _, err := BuildAnnounce(id, AnnounceInfo{Summary: strings.Repeat("x", MaxAnnounceSize)}, "", now); err != nil {
		t.Errorf("summary is cut, so the frame fits: %v", err)
	}
	if _, err := BuildAnnounce(id, AnnounceInfo{Endpoints: []string{strings.Repeat("x", MaxAnnounceSize)}}, "", now); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized ANNOUNCE: err = %v", err)
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{`{"type":"INPUT","to":"0x1","session_id":"a"}`, `{"session":{"session_id":"x"}}`,
		`{"a":"\"}","b":[{"c":"]"}]}`, `[]`, `{`, `{"a":1,}`, "{\"a\":\"\\u00e9\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		// ParseHeader agrees with encoding/json on the routing fields.
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil {
			t.Fatalf("ParseHeader accepted what encoding/json refuses: %q", b)
		}
		var typ string
		if json.Unmarshal(m["type"], &typ) == nil && typ != h.Type && bytes.IndexByte(b, '\\') < 0 && isUTF8(b) {
			t.Fatalf("type %q, encoding/json says %q in %q", h.Type, typ, b)
		}
		out, err := WithSessionID(b, "sess-1")
		if err != nil {
			t.Fatalf("WithSessionID: %v", err)
		}
		h2, err := ParseHeader(out)
		if err != nil || h2.SessionID != "sess-1" || h2.Type != h.Type || h2.To != h.To {
			t.Fatalf("WithSessionID(%q) = %q: %+v %v", b, out, h2, err)
		}
	})
}

func isUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

func FuzzVerifyAnnounce(f *testing.F) {
	v := loadVectors(f)
	for _, fr := range v.Frames {
		f.Add([]byte(fr))
	}
	f.Add([]byte(`{"type":"ANNOUNCE","address":"0x00","timestamp":1,"signature":"00"}`))
	now := time.Unix(v.Now, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := VerifyAnnounce(b, now, DefaultClockSkew)
		if err != nil {
			var ae *AnnounceError
			if !errors.As(err, &ae) || ae.Reason == "" || ae.Msg == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		// Whatever verifies was signed by the address's key.
		if _, err := trust.VerifyAnnounce(b, now, DefaultClockSkew); err != nil {
			t.Fatalf("accepted but trust refuses: %v", err)
		}
		if a.Address != strings.ToLower(a.Address) || len([]rune(a.Summary)) > MaxSummaryChars || len(a.Endpoints) > MaxEndpoints {
			t.Fatalf("accepted out-of-limits announce %+v", a)
		}
	})
}
