package dashboard_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/web/dashboard"
	"github.com/agenthost/agenthost/internal/web/uikit"
	"github.com/agenthost/agenthost/internal/web/webtest"
)

func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	h := dashboard.Handler()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET "+dashboard.Prefix, h)
	mux.Handle("GET "+uikit.Prefix, uikit.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	webtest.CheckServed(t, srv.URL, []webtest.Served{
		webtest.OK("/", "text/html", `src="ui/app.js"`),
		webtest.OK("/ui/app.js", "javascript", "showView"),
		webtest.OK("/", "text/html", `href="ui/kit/base.css"`),
		webtest.OK("/ui/kit/api.js", "javascript", "sessionStorage"),
		webtest.OK("/ui/kit/base.css", "text/css", ":focus-visible"),
		webtest.Status("/ui/api.js", 404), // shared: one home, under /ui/kit/
		webtest.Status("/ui/app.css", 404),
		webtest.Status("/ui/", 404),
		webtest.Status("/ui/index.html", 404),
		webtest.Status("/ui/nope.js", 404),
		webtest.Status("/ui/../go.mod", 404),
	})
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
