package uikit_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/web/uikit"
)

// The shared files are served under Prefix, and nothing else is: no
// folders, no index, no way out of the embedded files; every answer has
// the pages' security headers.
func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET "+uikit.Prefix, uikit.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, c := range []struct {
		path, ctype, contains string
		status                int
	}{
		{"/ui/kit/base.css", "text/css", ":focus-visible", 200},
		{"/ui/kit/api.js", "javascript", "sessionStorage", 200},
		{"/ui/kit/", "", "", 404},
		{"/ui/kit/nope.js", "", "", 404},
		{"/ui/kit/assets/api.js", "", "", 404},
		{"/ui/kit/..%2fuikit.go", "", "", 404},
	} {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.path, resp.StatusCode, c.status)
			continue
		}
		if c.status != 200 {
			continue
		}
		h := resp.Header
		if ct := h.Get("Content-Type"); !strings.Contains(ct, c.ctype) {
			t.Errorf("%s: Content-Type %q", c.path, ct)
		}
		if !strings.Contains(string(b), c.contains) {
			t.Errorf("%s: no %q", c.path, c.contains)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", c.path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", c.path, h)
		}
	}
}

// The shared script never writes markup or code from strings (only text
// nodes and attributes), and loads nothing from another site.
func TestAssetsOffline(t *testing.T) {
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|srcdoc`)
	for _, name := range []string{"api.js", "base.css"} {
		b, err := fs.ReadFile(uikit.FS, name)
		if err != nil {
			t.Fatalf("%s is not embedded: %v", name, err)
		}
		if m := sinks.FindString(string(b)); m != "" {
			t.Errorf("%s writes markup or code from strings: %s", name, m)
		}
		if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") {
			t.Errorf("%s loads something from another site", name)
		}
	}
}
