package coderuntime

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// getRaw calls a control route with the control token.
func (rg *rig) getRaw(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, rg.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// The workspace's files: listing and download, confined to the workspace
// (a symlink out of it is not followed, the data directory inside it is
// not shown, a FIFO does not hang), every file sent as a download.
func TestWorkspaceFiles(t *testing.T) {
	rg := newRig(t, nil) // the data directory is the default, inside the workspace
	ws := rg.rt.Workspace()
	outside := filepath.Join(t.TempDir(), "secret.txt")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(outside, []byte("outside the workspace"), 0o644))
	must(os.MkdirAll(filepath.Join(ws, "src/deep"), 0o755))
	must(os.WriteFile(filepath.Join(ws, "src/main.go"), []byte("package main\n"), 0o644))
	must(os.WriteFile(filepath.Join(ws, "page.html"), []byte("<script>alert(1)</script>"), 0o644))
	must(os.WriteFile(filepath.Join(ws, `<img src=x onerror=alert(1)>.txt`), []byte("x"), 0o644))
	must(os.Symlink(outside, filepath.Join(ws, "escape.txt")))
	must(os.Symlink("/", filepath.Join(ws, "rootdir")))
	must(os.Symlink("src/main.go", filepath.Join(ws, "inside.go")))
	must(os.Symlink(".agenthost/"+DatabaseName, filepath.Join(ws, "db-link")))
	must(syscall.Mkfifo(filepath.Join(ws, "pipe"), 0o644))

	t.Run("list", func(t *testing.T) {
		resp, b := rg.getRaw(t, "/control/files")
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var l FileList
		must(json.Unmarshal(b, &l))
		got := map[string]string{}
		var order []string
		for _, e := range l.Entries {
			got[e.Name] = e.Type
			order = append(order, e.Name)
		}
		want := map[string]string{"src": "dir", "page.html": "file", `<img src=x onerror=alert(1)>.txt`: "file", "escape.txt": "symlink",
			"rootdir": "symlink", "inside.go": "symlink", "db-link": "symlink", "pipe": "other"}
		for n, typ := range want {
			if got[n] != typ {
				t.Errorf("%s: type %q, want %q (all: %v)", n, got[n], typ, got)
			}
		}
		if _, ok := got[".agenthost"]; ok {
			t.Error("the runtime's data directory is listed")
		}
		if order[0] != "src" {
			t.Errorf("directories first: %v", order)
		}
		_, b = rg.getRaw(t, "/control/files?path=src")
		must(json.Unmarshal(b, &l))
		if l.Path != "src" || len(l.Entries) != 2 || l.Entries[0].Path != "src/deep" || l.Entries[1].Path != "src/main.go" || l.Entries[1].Size != 13 {
			t.Errorf("src: %+v", l)
		}
	})

	for _, c := range []struct {
		name, route, path string
		status            int
		body              string
	}{
		{"file", "content", "src/main.go", 200, "package main\n"},
		{"html is a download", "content", "page.html", 200, "<script>alert(1)</script>"},
		{"symlink inside", "content", "inside.go", 200, "package main\n"},
		{"symlink out of the workspace", "content", "escape.txt", 400, ""},
		{"symlink to /", "files", "rootdir", 400, ""},
		{"through a symlink to /", "content", "rootdir/etc/passwd", 400, ""},
		{"data directory", "content", ".agenthost/" + DatabaseName, 404, ""},
		{"data directory listed", "files", ".agenthost", 404, ""},
		{"symlink into the data directory", "content", "db-link", 404, ""},
		{"fifo", "content", "pipe", 400, ""},
		{"dotdot", "content", "../x", 400, ""},
		{"dotdot listed", "files", "src/../..", 400, ""},
		{"absolute", "content", "/etc/passwd", 404, ""},
		{"missing", "content", "nope.txt", 404, ""},
		{"directory", "content", "src", 400, ""},
		{"file listed", "files", "src/main.go", 400, ""},
		{"no path", "content", "", 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			route := "/control/files"
			if c.route == "content" {
				route += "/content"
			}
			resp, b := rg.getRaw(t, route+"?path="+url.QueryEscape(c.path))
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %.200q", resp.StatusCode, c.status, b)
			}
			if c.status != 200 {
				return
			}
			if string(b) != c.body {
				t.Errorf("body %q", b)
			}
			h := resp.Header
			if h.Get("Content-Type") != "application/octet-stream" || h.Get("X-Content-Type-Options") != "nosniff" ||
				!strings.HasPrefix(h.Get("Content-Disposition"), "attachment") || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
				t.Errorf("headers %v", h)
			}
		})
	}
}

// A directory larger than MaxListEntries is listed in part, and says so.
func TestWorkspaceListTruncated(t *testing.T) {
	rg := newRig(t, nil)
	dir := filepath.Join(rg.rt.Workspace(), "many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range MaxListEntries + 1 {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%05d", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	resp, b := rg.getRaw(t, "/control/files?path=many")
	var l FileList
	if err := json.Unmarshal(b, &l); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if !l.Truncated || len(l.Entries) != MaxListEntries {
		t.Errorf("truncated %v with %d entries", l.Truncated, len(l.Entries))
	}
}
