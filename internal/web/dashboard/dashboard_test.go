package dashboard_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/web/dashboard"
	"github.com/agenthost/agenthost/internal/web/uikit"
)

func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	h := dashboard.Handler()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET "+dashboard.Prefix, h)
	mux.Handle("GET "+uikit.Prefix, uikit.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, c := range []struct {
		path, ctype, contains string
		status                int
	}{
		{"/", "text/html", `src="ui/app.js"`, 200},
		{"/ui/app.js", "javascript", "showView", 200},
		{"/", "text/html", `href="ui/kit/base.css"`, 200},
		{"/ui/kit/api.js", "javascript", "sessionStorage", 200},
		{"/ui/kit/base.css", "text/css", ":focus-visible", 200},
		{"/ui/api.js", "", "", 404}, // shared: one home, under /ui/kit/
		{"/ui/app.css", "", "", 404},
		{"/ui/", "", "", 404},
		{"/ui/index.html", "", "", 404},
		{"/ui/nope.js", "", "", 404},
		{"/ui/../go.mod", "", "", 404},
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
		if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, c.ctype) {
			t.Errorf("%s: Content-Type %q", c.path, ct)
		}
		if !strings.Contains(string(b), c.contains) {
			t.Errorf("%s: no %q", c.path, c.contains)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", c.path, csp)
		}
	}
}

// Every file the page loads is embedded, and nothing comes from elsewhere.
func TestAssetsOffline(t *testing.T) {
	b, err := fsRead("index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"ui/kit/base.css", "ui/kit/api.js", "ui/agents.js", "ui/scopes.js", "ui/tokens.js", "ui/usage.js", "ui/app.js"} {
		if !strings.Contains(b, `"`+ref+`"`) {
			t.Errorf("index.html does not load %s", ref)
		}
		var err error
		if shared, ok := strings.CutPrefix(ref, "ui/kit/"); ok {
			_, err = fs.ReadFile(uikit.FS, shared)
		} else {
			_, err = fsRead(strings.TrimPrefix(ref, "ui/"))
		}
		if err != nil {
			t.Errorf("%s is not embedded: %v", ref, err)
		}
	}
	if strings.Contains(b, "http://") || strings.Contains(b, "https://") {
		t.Error("index.html loads something from another site")
	}
}
