// Package webtest checks what the platform's page handlers serve, for the
// tests of the pages (dashboard, agent page, uikit): each file's status,
// type and content, and the security headers every page and file carries.
//
// It is imported only by tests.
package webtest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Served is one expectation: GET Path answers Status; a 200 has a
// Content-Type containing CType and a body containing Contains.
type Served struct {
	Path, CType, Contains string
	Status                int
}

// CheckServed GETs every case from base (a server's URL) and checks it,
// and that every 200 carries the pages' headers: nosniff, no referrer,
// no framing (X-Frame-Options and a CSP with frame-ancestors 'none'), and
// a CSP that allows only the page's own scripts and nothing unsafe.
func CheckServed(t *testing.T, base string, cases []Served) {
	t.Helper()
	for _, c := range cases {
		resp, err := http.Get(base + c.Path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.Status {
			t.Errorf("%s: status %d, want %d", c.Path, resp.StatusCode, c.Status)
			continue
		}
		if c.Status != http.StatusOK {
			continue
		}
		h := resp.Header
		if ct := h.Get("Content-Type"); !strings.Contains(ct, c.CType) {
			t.Errorf("%s: Content-Type %q", c.Path, ct)
		}
		if !strings.Contains(string(b), c.Contains) {
			t.Errorf("%s: no %q", c.Path, c.Contains)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", c.Path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", c.Path, h)
		}
	}
}

// OK expects path to answer 200 with a Content-Type containing ctype and
// a body containing contains.
func OK(path, ctype, contains string) Served {
	return Served{Path: path, CType: ctype, Contains: contains, Status: http.StatusOK}
}

// Status expects path to answer status (a refusal: nothing else is
// checked).
func Status(path string, status int) Served { return Served{Path: path, Status: status} }
