package agentpage_test

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/web/agentpage"
	"github.com/agenthost/agenthost/internal/web/uikit"
	"github.com/agenthost/agenthost/internal/web/webtest"
)

// The page and its files, as the platform serves them: at /a/{agentId}
// for any id (whose agent it is the API decides, with the token), with
// the dashboard's security headers; nothing else under the prefix.
func TestPageServed(t *testing.T) {
	env := startPlatform(t, false)
	webtest.CheckServed(t, env.URL, []webtest.Served{
		webtest.OK("/a/agt_anything", "text/html", `src="../ui/agent/app.js"`),
		webtest.OK("/a/"+url.PathEscape("<script>"), "text/html", "Sign in"),
		webtest.OK("/a/agt_anything", "text/html", `href="../ui/kit/base.css"`),
		webtest.OK("/ui/agent/app.js", "javascript", "openPage"),
		webtest.OK("/ui/agent/panels.js", "javascript", "showFolder"),
		webtest.OK("/ui/agent/app.css", "text/css", "#view-agent"),
		webtest.OK("/ui/kit/base.css", "text/css", ":focus-visible"),
		webtest.OK("/ui/kit/api.js", "javascript", "sessionStorage"),
		webtest.Status("/ui/agent/api.js", 404), // no second copy
		webtest.Status("/ui/kit/", 404),
		webtest.Status("/ui/kit/x/api.js", 404),
		webtest.OK("/ui/app.js", "javascript", "showView"), // the dashboard's, untouched
		webtest.Status("/ui/agent/", 404),
		webtest.Status("/ui/agent/index.html", 404),
		webtest.Status("/ui/agent/nope.js", 404),
		webtest.Status("/ui/agent/x/app.js", 404),
		webtest.Status("/a/agt_x/", 404),
		webtest.Status("/a/agt_x/session/ses_y", 401), // session pages still need their capability
	})
}

// Every file the page loads is embedded, nothing comes from elsewhere,
// and the scripts never write markup (only text nodes and attributes). That
// the token stays out of URLs the browser test checks on the requests made.
func TestAssetsOffline(t *testing.T) {
	read := func(name string) string {
		b, err := fs.ReadFile(agentpage.FS, name)
		if err != nil {
			t.Fatalf("%s is not embedded: %v", name, err)
		}
		return string(b)
	}
	index := read("index.html")
	refs := regexp.MustCompile(`(?:src|href)="\.\./ui/agent/([^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) != 3 {
		t.Fatalf("index.html loads %d files of its own: %v", len(refs), refs)
	}
	for _, ref := range refs {
		read(ref[1])
	}
	shared := regexp.MustCompile(`(?:src|href)="\.\./ui/kit/([^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(shared) != 2 {
		t.Fatalf("index.html loads %d shared files: %v", len(shared), shared)
	}
	for _, ref := range shared {
		if _, err := fs.ReadFile(uikit.FS, ref[1]); err != nil {
			t.Errorf("shared %s is not embedded: %v", ref[1], err)
		}
	}
	if strings.Contains(index, "http://") || strings.Contains(index, "https://") {
		t.Error("index.html loads something from another site")
	}
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|srcdoc`)
	for _, name := range []string{"panels.js", "app.js"} {
		js := read(name)
		if m := sinks.FindString(js); m != "" {
			t.Errorf("%s writes markup or code from strings: %s", name, m)
		}
	}
}

// The workspace files API: listing and download for the agent's
// organization, confined to the workspace, always a download; another
// organization's token sees no such agent (404), no token is 401, a
// stopped agent is 400.
func TestFilesAPI(t *testing.T) {
	env := startPlatform(t, true)
	tokA, tokB := env.Token(t, "files-org-a"), env.Token(t, "files-org-b")
	a, b := env.Client(tokA), env.Client(tokB)
	id := createAgent(t, env, tokA, map[string]any{"name": "files-bot", "model": "offline/demo"})
	ws := env.workspace(id)
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("src/app.go", "package app\n")
	write("page.html", "<script>alert(document.domain)</script>")
	write("<img src=x onerror=alert(1)>.txt", "hostile name")
	if err := os.Symlink("/etc/passwd", filepath.Join(ws, "passwd")); err != nil {
		t.Fatal(err)
	}

	base := "/api/v1/agents/" + id + "/files"
	m := a.Do(t, "GET", base, nil).Want(t, 200)
	if m["agentId"] != id || m["path"] != "" {
		t.Errorf("list: %v", m)
	}
	names := map[string]string{}
	for _, e := range m["entries"].([]any) {
		e := e.(map[string]any)
		names[e["name"].(string)] = e["type"].(string)
	}
	for n, typ := range map[string]string{"src": "dir", "page.html": "file", "<img src=x onerror=alert(1)>.txt": "file", "passwd": "symlink"} {
		if names[n] != typ {
			t.Errorf("entry %q: %q, want %q (all %v)", n, names[n], typ, names)
		}
	}
	m = a.Do(t, "GET", base+"?path=src", nil).Want(t, 200)
	if es := m["entries"].([]any); len(es) != 1 || es[0].(map[string]any)["path"] != "src/app.go" {
		t.Errorf("src: %v", m)
	}

	for _, tc := range []struct {
		name, path string
		status     int
		body       string
	}{
		{"file", "src/app.go", 200, "package app\n"},
		{"html", "page.html", 200, "<script>alert(document.domain)</script>"},
		{"hostile name", "<img src=x onerror=alert(1)>.txt", 200, "hostile name"},
		{"symlink out", "passwd", 400, ""},
		{"dotdot", "../data/" + "runtime.db", 400, ""},
		{"missing", "nope.txt", 404, ""},
		{"directory", "src", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.Do(t, "GET", base+"/content?path="+url.QueryEscape(tc.path), nil)
			if tc.status != 200 {
				r.WantError(t, tc.status, "")
				return
			}
			if r.Status != 200 || string(r.Body) != tc.body {
				t.Fatalf("%d %q", r.Status, r.Body)
			}
			h := r.Header
			if h.Get("Content-Type") != "application/octet-stream" || h.Get("X-Content-Type-Options") != "nosniff" ||
				!strings.HasPrefix(h.Get("Content-Disposition"), "attachment") || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
				t.Errorf("headers %v", h)
			}
		})
	}

	// Another organization's token: no such agent, on every route the page uses.
	for _, p := range []string{"", "/files", "/files/content?path=src/app.go", "/usage", "/permissions", "/questions", "/messages"} {
		b.Do(t, "GET", "/api/v1/agents/"+id+p, nil).WantError(t, 404, "agent not found")
	}
	b.Do(t, "POST", "/api/v1/agents/"+id+"/messages", map[string]string{"message": "hi"}).WantError(t, 404, "agent not found")
	env.Client("").Do(t, "GET", base, nil).WantError(t, 401, "")

	a.Do(t, "POST", "/api/v1/agents/"+id+"/stop", nil).Want(t, 200)
	a.Do(t, "GET", base, nil).WantError(t, 400, "not running")
	a.Do(t, "GET", base+"/content?path=src/app.go", nil).WantError(t, 400, "not running")
}
