package client

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func TestHTTPBase(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:8000":           "http://localhost:8000",
		"http://a.b:1":             "http://a.b:1",
		"https://a.b/":             "https://a.b",
		"ws://a.b:9/ws":            "http://a.b:9",
		"wss://a.b/agents/x/ws":    "https://a.b/agents/x",
		"http://localhost:8000/?q": "http://localhost:8000",
	} {
		if got, err := httpBase(in); err != nil || got != want {
			t.Errorf("httpBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://x", "http://", "://"} {
		if _, err := httpBase(bad); err == nil {
			t.Errorf("httpBase(%q) accepted", bad)
		}
	}
	if wsBase("https://a.b/x") != "wss://a.b/x" || wsBase("http://a.b") != "ws://a.b" {
		t.Error("wsBase")
	}
}

// FuzzHTTPBase: any input gives an error or an http(s) URL without query,
// fragment or trailing /ws.
func FuzzHTTPBase(f *testing.F) {
	for _, s := range []string{"localhost:8000", "https://a.b/ws", "ws://[::1]:9/", "0x12", "http://a b", "wss://u:p@h/x/ws/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := httpBase(in)
		if err != nil {
			return
		}
		u, err := url.Parse(out)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(u.Path, "/ws") {
			t.Fatalf("httpBase(%q) = %q (%v)", in, out, err)
		}
	})
}

// FuzzFrame: any frame the agent or relay sends decodes without panicking,
// and an event keeps the frame whole.
func FuzzFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"STREAM","chunk":"hi","id":"3","session_id":"s"}`,
		`{"type":"tool_result","name":"add","result":5,"status":"completed","id":4}`,
		`{"type":"ask_user","text":"?","options":["a","b"],"multi_select":true}`,
		`{"type":"approval_needed","tool":"x","arguments":{"a":1}}`,
		`{"type":"OUTPUT","result":null,"session":{"session_id":"s"}}`,
		`{"type":"ERROR","error":"agent 0x is offline"}`,
		`[]`, `{"type":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr frame
		if json.Unmarshal(b, &fr) != nil {
			return
		}
		fr.raw = b
		e := fr.event()
		if string(e.Raw) != string(b) || e.Type != fr.Type {
			t.Fatalf("event %+v of %s", e, b)
		}
		_ = (&conn{c: &Client{}}).errorOf(&fr).Error()
	})
}
