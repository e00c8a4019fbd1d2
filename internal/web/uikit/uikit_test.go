package uikit_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/web/uikit"
	"github.com/agenthost/agenthost/internal/web/webtest"
)

// The shared files are served under Prefix, and nothing else is: no
// folders, no index, no way out of the embedded files; every answer has
// the pages' security headers.
func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET "+uikit.Prefix, uikit.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	webtest.CheckServed(t, srv.URL, []webtest.Served{
		webtest.OK("/ui/kit/base.css", "text/css", ":focus-visible"),
		webtest.OK("/ui/kit/api.js", "javascript", "sessionStorage"),
		webtest.Status("/ui/kit/", 404),
		webtest.Status("/ui/kit/nope.js", 404),
		webtest.Status("/ui/kit/assets/api.js", 404),
		webtest.Status("/ui/kit/..%2fuikit.go", 404),
	})
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
