package coding

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newWorkspace makes a workspace with a few files, a symlink to /etc, a
// symlink to a directory outside, and links that stay inside.
func newWorkspace(t testing.TB) (*Workspace, string) {
	t.Helper()
	parent := t.TempDir()
	root := filepath.Join(parent, "ws")
	outside := filepath.Join(parent, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "src", "pkg")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"README.md":           "# hello\n",
		"src/main.go":         "package main\n\nfunc main() {}\n",
		"src/pkg/lib.go":      "package pkg\n",
		"../outside/secret":   "top secret\n",
		"src/pkg/../notes.md": "notes\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"etc":       "/etc",
		"outdir":    outside,
		"rel-out":   "../outside/secret",
		"inside":    "src",
		"abs-in":    filepath.Join(root, "README.md"),
		"dangling":  "nowhere",
		"src/up":    "..",
		"src/upup":  "../..",
		"loop":      "loop",
		"passwd-ln": "/etc/passwd",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := OpenWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	return w, root
}

func TestResolve(t *testing.T) {
	w, root := newWorkspace(t)
	tests := []struct {
		path    string
		want    string
		outside bool // refused as an escape
		fails   bool // refused for another reason
	}{
		{path: "", want: "."},
		{path: ".", want: "."},
		{path: "README.md", want: "README.md"},
		{path: "./src/../README.md", want: "README.md"},
		{path: "src/main.go", want: "src/main.go"},
		{path: "new/dir/file.txt", want: "new/dir/file.txt"},
		{path: root, want: "."},
		{path: filepath.Join(root, "src/main.go"), want: "src/main.go"},
		{path: "inside/main.go", want: "src/main.go"},
		{path: "inside/newfile", want: "src/newfile"},
		{path: "abs-in", want: "README.md"},
		{path: "src/up/README.md", want: "README.md"},
		{path: "README.md/child", want: "README.md/child"},
		{path: "..", outside: true},
		{path: "../outside/secret", outside: true},
		{path: "src/../../outside", outside: true},
		{path: "/etc/passwd", outside: true},
		{path: "/", outside: true},
		{path: root + "-sibling/x", outside: true},
		{path: "etc", outside: true},
		{path: "etc/passwd", outside: true},
		{path: "etc/new-file", outside: true},
		{path: "passwd-ln", outside: true},
		{path: "outdir/secret", outside: true},
		{path: "outdir/created-later", outside: true},
		{path: "rel-out", outside: true},
		{path: "src/upup/outside/secret", outside: true},
		{path: "src/upup", outside: true},
		{path: "dangling", fails: true},
		{path: "loop", fails: true},
		{path: "a\x00b", fails: true},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got, err := w.Resolve(tc.path)
			switch {
			case tc.outside:
				if !errors.Is(err, ErrOutsideWorkspace) {
					t.Fatalf("Resolve(%q) = %q, %v; want an outside-workspace error", tc.path, got, err)
				}
			case tc.fails:
				if err == nil {
					t.Fatalf("Resolve(%q) = %q; want an error", tc.path, got)
				}
			case err != nil:
				t.Fatalf("Resolve(%q): %v", tc.path, err)
			case got != tc.want:
				t.Fatalf("Resolve(%q) = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}

// The root may itself be reached through a symlink; absolute paths in
// either spelling are inside.
func TestResolveSymlinkedRoot(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	w, err := OpenWorkspace(link)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(link, "a"), filepath.Join(real, "a"), "a"} {
		if got, err := w.Resolve(p); err != nil || got != "a" {
			t.Errorf("Resolve(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := OpenWorkspace(filepath.Join(dir, "missing")); err == nil {
		t.Error("OpenWorkspace of a missing directory succeeded")
	}
}

// FuzzResolve checks the resolver's one promise: whatever the input, a
// path it returns is local and, joined to the root with its symlinks
// followed, stays inside the root.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a/../..", "/etc/passwd", "etc/x", "outdir/../ws/README.md",
		"src/upup/ws/README.md", "inside/../../x", "//", "./././", "src/up/up", "new/../../ws/x", "\x00"} {
		f.Add(s)
	}
	w, _ := newWorkspace(f)
	f.Fuzz(func(t *testing.T, p string) {
		rel, err := w.Resolve(p)
		if err != nil {
			return
		}
		if rel != "." && !filepath.IsLocal(rel) {
			t.Fatalf("Resolve(%q) = %q: not local", p, rel)
		}
		full := filepath.Join(w.real, rel)
		// Follow whatever exists of the result: it must stay inside.
		existing := full
		for {
			if _, err := os.Lstat(existing); err == nil {
				break
			}
			existing = filepath.Dir(existing)
		}
		real, err := filepath.EvalSymlinks(existing)
		if err != nil {
			t.Fatalf("Resolve(%q) = %q, which does not resolve: %v", p, rel, err)
		}
		if real != w.real && !strings.HasPrefix(real, w.real+string(filepath.Separator)) {
			t.Fatalf("Resolve(%q) = %q leads to %s, outside %s", p, rel, real, w.real)
		}
	})
}
