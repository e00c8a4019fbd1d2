package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/httpjson"
)

func TestRuntimeError(t *testing.T) {
	for _, tc := range []struct {
		status     int
		body       string
		wantStatus int
		wantMsg    string
	}{
		{404, `{"error":"session not found"}`, 404, "session not found"},
		{409, `{"error":"permission perm_1 is no longer pending"}`, 409, "permission perm_1 is no longer pending"},
		{400, `{"error":"answers must fit the questions"}`, 400, "answers must fit the questions"},
		{413, ``, 413, "request entity too large"},
		{500, `{"error":"database is locked"}`, 502, "agent failed: database is locked"},
		{401, `{"error":"invalid or missing control token"}`, 502, "agent failed: invalid or missing control token"},
		{503, `<html>oops</html>`, 502, "agent is not responding"},
	} {
		var he *httpjson.Error
		if err := runtimeError("a1", "/messages", tc.status, []byte(tc.body)); !errors.As(err, &he) || he.Status != tc.wantStatus || he.Msg != tc.wantMsg {
			t.Errorf("runtime %d %s → %v, want %d %q", tc.status, tc.body, err, tc.wantStatus, tc.wantMsg)
		}
	}
}

func TestWithFrameAncestors(t *testing.T) {
	for _, tc := range []struct{ in, ancestors, want string }{
		{"default-src 'none'; frame-ancestors *", "https://a.example", "default-src 'none'; frame-ancestors https://a.example"},
		{"default-src 'none'; Frame-Ancestors 'self'; img-src data:", "*", "default-src 'none'; img-src data:; frame-ancestors *"},
		{"default-src 'self'", "'self' https://b.example", "default-src 'self'; frame-ancestors 'self' https://b.example"},
	} {
		if got := withFrameAncestors(tc.in, tc.ancestors); got != tc.want {
			t.Errorf("withFrameAncestors(%q, %q) = %q, want %q", tc.in, tc.ancestors, got, tc.want)
		}
	}
	if got := withFrameAncestors("", "*"); !strings.HasSuffix(got, "; frame-ancestors *") || !strings.Contains(got, "default-src") {
		t.Errorf("an empty policy becomes %q", got)
	}
}

func TestSessionFor(t *testing.T) {
	whole, one := target{}, target{session: "ses_a"}
	for _, tc := range []struct {
		t           target
		asked, want string
		status      int
	}{
		{whole, "", "", 0},
		{whole, "ses_b", "ses_b", 0},
		{one, "", "ses_a", 0},
		{one, "ses_a", "ses_a", 0},
		{one, "ses_b", "", http.StatusNotFound},
	} {
		got, err := sessionFor(tc.t, tc.asked)
		var he *httpjson.Error
		if tc.status != 0 {
			if !errors.As(err, &he) || he.Status != tc.status {
				t.Errorf("sessionFor(%q, %q) err = %v, want %d", tc.t.session, tc.asked, err, tc.status)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("sessionFor(%q, %q) = %q, %v; want %q", tc.t.session, tc.asked, got, err, tc.want)
		}
	}
}
