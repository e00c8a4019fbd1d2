package api

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestForwardMark: a forwarding mark is honoured only when signed with the
// installation's key, for this method and path, and recent.
func TestForwardMark(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := &Server{cfg: Config{ForwardKey: ForwardKey([]byte("k1")), Now: func() time.Time { return now }}}
	other := &Server{cfg: Config{ForwardKey: ForwardKey([]byte("k2")), Now: s.cfg.Now}}
	req := func(method, path, mark string) bool {
		r := httptest.NewRequest(method, path, nil)
		if mark != "" {
			r.Header.Set(ForwardedHeader, mark)
		}
		return s.forwarded(r)
	}
	const p = "/api/v1/agents/ag_1/messages"
	mark := s.forwardMark("node-a", "GET", p)
	if !req("GET", p, mark) {
		t.Fatal("a valid mark is not honoured")
	}
	if !req("GET", p+"?sessionId=x", mark) {
		t.Fatal("the query is not part of the mark")
	}
	for name, bad := range map[string]bool{
		"no mark":        req("GET", p, ""),
		"other method":   req("POST", p, mark),
		"other path":     req("GET", "/api/v1/agents/ag_2/messages", mark),
		"other key":      req("GET", p, other.forwardMark("node-a", "GET", p)),
		"other node":     req("GET", p, strings.Replace(mark, "node-a", "node-b", 1)),
		"garbage":        req("GET", p, "x"),
		"no signature":   req("GET", p, "node-a:1800000000:"),
		"forged numbers": req("GET", p, "node-a:1800000000:00"),
	} {
		if bad {
			t.Errorf("%s: honoured", name)
		}
	}
	now = now.Add(forwardSkew + time.Second)
	if req("GET", p, mark) {
		t.Error("a stale mark is honoured")
	}
	if (&Server{cfg: Config{Now: s.cfg.Now}}).forwarded(httptest.NewRequest("GET", p, nil)) {
		t.Error("forwarding without a key")
	}
}
