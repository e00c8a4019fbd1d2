package coding

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/agent"
)

// toolbox builds the tools over a fresh workspace (see newWorkspace).
func toolbox(t testing.TB) (map[string]agent.Tool, string) {
	return toolboxWith(t, Options{})
}

// toolboxWith is toolbox with options; a sandbox in them is made for the
// workspace by newSandbox when opts.Sandbox is the marker withSandbox.
func toolboxWith(t testing.TB, opts Options) (map[string]agent.Tool, string) {
	t.Helper()
	w, root := newWorkspace(t)
	if opts.Sandbox == withSandbox {
		opts.Sandbox = newSandbox(t, w.Root())
	}
	tools, err := Tools(w.Root(), opts)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]agent.Tool{}
	for _, tl := range tools {
		m[tl.Spec().Name] = tl
	}
	return m, root
}

func call(t testing.TB, tools map[string]agent.Tool, name, args string) (string, error) {
	t.Helper()
	tl, ok := tools[name]
	if !ok {
		t.Fatalf("no tool %s", name)
	}
	return tl.Call(context.Background(), json.RawMessage(args))
}

func argsJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRead(t *testing.T) {
	tools, root := toolbox(t)
	var long strings.Builder
	for i := 1; i <= 3000; i++ {
		long.WriteString("line ")
		long.WriteString(strings.Repeat("x", i%7))
		long.WriteString("\n")
	}
	mustWrite(t, filepath.Join(root, "long.txt"), long.String())
	mustWrite(t, filepath.Join(root, "bin.dat"), "\x89PNG\r\n\x1a\n\x00\x00\x00")
	mustWrite(t, filepath.Join(root, "crlf.txt"), "a\r\nb\r\n")
	mustWrite(t, filepath.Join(root, "empty.txt"), "")
	mustWrite(t, filepath.Join(root, "wide.txt"), strings.Repeat("é", 3000)+"\nend\n")
	tests := []struct {
		name    string
		args    string
		want    []string
		notWant []string
		err     string
	}{
		{"numbered", `{"path":"src/main.go"}`, []string{"     1\tpackage main\n", "     3\tfunc main() {}\n"}, nil, ""},
		{"offset and limit", `{"path":"long.txt","offset":10,"limit":2}`, []string{"    10\t", "    11\t", "continue with offset=12"}, []string{"    12\t"}, ""},
		{"default limit", `{"path":"long.txt"}`, []string{"  2000\t", "continue with offset=2001"}, []string{"  2001\t"}, ""},
		{"past the end", `{"path":"src/main.go","offset":99}`, []string{"past the end"}, nil, ""},
		{"binary", `{"path":"bin.dat"}`, []string{"binary file", "image/png"}, nil, ""},
		{"crlf", `{"path":"crlf.txt"}`, []string{"     1\ta\n     2\tb\n"}, []string{"\r"}, ""},
		{"empty", `{"path":"empty.txt"}`, []string{"is empty"}, nil, ""},
		{"long line", `{"path":"wide.txt"}`, []string{"[line truncated]", "     2\tend"}, nil, ""},
		{"through inside link", `{"path":"inside/main.go"}`, []string{"package main"}, nil, ""},
		{"directory", `{"path":"src"}`, nil, nil, "is a directory"},
		{"missing with hint", `{"path":"src/main.ts"}`, nil, nil, "did you mean src/main.go"},
		{"escape", `{"path":"../outside/secret"}`, nil, nil, "outside the workspace"},
		{"symlink to etc", `{"path":"etc/passwd"}`, nil, nil, "outside the workspace"},
		{"absolute outside", `{"path":"/etc/hostname"}`, nil, nil, "outside the workspace"},
		{"negative offset", `{"path":"long.txt","offset":-1}`, nil, nil, "negative"},
		{"missing argument", `{}`, nil, nil, "invalid arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := call(t, tools, "read", tc.args)
			checkResult(t, out, err, tc.want, tc.notWant, tc.err)
		})
	}
}

func checkResult(t *testing.T, out string, err error, want, notWant []string, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want %q (output %q)", err, wantErr, out)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, cut(out))
		}
	}
	for _, w := range notWant {
		if strings.Contains(out, w) {
			t.Errorf("output has %q:\n%s", w, cut(out))
		}
	}
}

func cut(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

func mustWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWrite(t *testing.T) {
	tools, root := toolbox(t)
	tests := []struct {
		name, path, content string
		file                string // where the content must land
		err                 string
	}{
		{"new file", "a.txt", "hello", "a.txt", ""},
		{"parent dirs", "deep/er/b.txt", "x", "deep/er/b.txt", ""},
		{"overwrite", "README.md", "new", "README.md", ""},
		{"through inside link", "inside/c.go", "package c", "src/c.go", ""},
		{"absolute inside", filepath.Join(root, "d.txt"), "d", "d.txt", ""},
		{"escape", "../outside/evil", "x", "", "outside the workspace"},
		{"symlink dir out", "outdir/evil", "x", "", "outside the workspace"},
		{"symlink to etc", "etc/evil", "x", "", "outside the workspace"},
		{"symlink file out", "rel-out", "x", "", "outside the workspace"},
		{"absolute outside", "/tmp/evil-agenthost", "x", "", "outside the workspace"},
		{"directory", "src", "x", "", "is a directory"},
		{"root", ".", "x", "", "not the workspace itself"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := call(t, tools, "write", argsJSON(map[string]string{"path": tc.path, "content": tc.content}))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(root, tc.file))
			if err != nil || string(got) != tc.content {
				t.Fatalf("%s = %q, %v (tool said %q)", tc.file, got, err, out)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(root), "outside", "secret")); string(b) != "top secret\n" {
		t.Fatalf("outside file changed: %q", b)
	}
	if _, err := os.Stat("/tmp/evil-agenthost"); err == nil {
		t.Fatal("wrote outside the workspace")
	}
}

func TestWriteKeepsMode(t *testing.T) {
	tools, root := toolbox(t)
	p := filepath.Join(root, "run.sh")
	mustWrite(t, p, "#!/bin/sh\n")
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, tools, "write", `{"path":"run.sh","content":"#!/bin/sh\necho hi\n"}`); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o755 {
		t.Fatalf("mode = %v", fi.Mode())
	}
}

func TestEdit(t *testing.T) {
	const src = "func a() {\n\treturn 1\n}\n\nfunc b() {\n\treturn 1\n}\n"
	tests := []struct {
		name     string
		file     string // initial content; "-" for no file
		args     map[string]any
		want     string // content afterwards
		err      string
		wantSays string
	}{
		{"unique", src, map[string]any{"old_string": "func a() {\n\treturn 1", "new_string": "func a() {\n\treturn 2"},
			strings.Replace(src, "return 1", "return 2", 1), "", "1 replacement"},
		{"not unique", src, map[string]any{"old_string": "return 1", "new_string": "return 2"}, src, "occurs 2 times", ""},
		{"replace all", src, map[string]any{"old_string": "return 1", "new_string": "return 2", "replace_all": true},
			strings.ReplaceAll(src, "return 1", "return 2"), "", "2 replacement"},
		{"not found", src, map[string]any{"old_string": "return 3", "new_string": "x"}, src, "not found", ""},
		{"identical", src, map[string]any{"old_string": "return 1", "new_string": "return 1"}, src, "identical", ""},
		{"crlf file", "a\r\nb\r\nc\r\n", map[string]any{"old_string": "a\nb", "new_string": "a\nB"}, "a\r\nB\r\nc\r\n", "", "1 replacement"},
		{"create with empty old", "-", map[string]any{"old_string": "", "new_string": "fresh\n"}, "fresh\n", "", "Created"},
		{"empty old on content", src, map[string]any{"old_string": "", "new_string": "x"}, src, "already has content", ""},
		{"missing file", "-", map[string]any{"old_string": "x", "new_string": "y"}, "-", "not found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tools, root := toolbox(t)
			p := filepath.Join(root, "f.go")
			if tc.file != "-" {
				mustWrite(t, p, tc.file)
			}
			tc.args["path"] = "f.go"
			out, err := call(t, tools, "edit", argsJSON(tc.args))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
			} else if err != nil || !strings.Contains(out, tc.wantSays) {
				t.Fatalf("edit = %q, %v", out, err)
			}
			got, err := os.ReadFile(p)
			if tc.want == "-" {
				if !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("file exists: %q", got)
				}
				return
			}
			if string(got) != tc.want {
				t.Fatalf("content = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEditRefusesEscapes(t *testing.T) {
	tools, root := toolbox(t)
	for _, p := range []string{"../outside/secret", "rel-out", "outdir/secret", filepath.Join(filepath.Dir(root), "outside", "secret")} {
		_, err := call(t, tools, "edit", argsJSON(map[string]any{"path": p, "old_string": "top", "new_string": "no"}))
		if err == nil || !errors.Is(err, ErrOutsideWorkspace) {
			t.Errorf("edit %s: err = %v", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(root), "outside", "secret")); string(b) != "top secret\n" {
		t.Fatalf("outside file changed: %q", b)
	}
}

func TestList(t *testing.T) {
	tools, root := toolbox(t)
	mustWrite(t, filepath.Join(root, ".git", "HEAD"), "ref")
	tests := []struct {
		name    string
		args    string
		want    []string
		notWant []string
		err     string
	}{
		{"root", `{}`, []string{"./\n", "src/\n", "README.md\n", "etc@\n"}, []string{"main.go"}, ""},
		{"depth", `{"depth":3}`, []string{"  main.go\n", "    lib.go\n", ".git/\n"}, []string{"HEAD"}, ""},
		{"sub", `{"path":"src"}`, []string{"src/\n", "pkg/\n", "main.go\n"}, []string{"README"}, ""},
		{"escape", `{"path":".."}`, nil, nil, "outside the workspace"},
		{"symlink dir out", `{"path":"outdir"}`, nil, nil, "outside the workspace"},
		{"not a dir", `{"path":"README.md"}`, nil, nil, "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := call(t, tools, "list", tc.args)
			checkResult(t, out, err, tc.want, tc.notWant, tc.err)
		})
	}
}

func TestListBounded(t *testing.T) {
	tools, root := toolbox(t)
	for i := range listMaxEntries + 10 {
		mustWrite(t, filepath.Join(root, "many", "f"+strconv.Itoa(i)), "")
	}
	out, err := call(t, tools, "list", `{"path":"many"}`)
	if err != nil || !strings.Contains(out, "listing truncated") {
		t.Fatalf("list = %v, %s", err, cut(out))
	}
}

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"same", "a\n", "a\n", ""},
		{"change middle", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n",
			"--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n"},
		{"new file", "", "a\nb\n", "--- a/f\n+++ b/f\n@@ -0,0 +1,2 @@\n+a\n+b\n"},
		{"no final newline", "a\n", "a", "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+a\n\\ No newline at end of file\n"},
		{"append", "a\n", "a\nb\n", "--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n a\n+b\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := unifiedDiff("f", tc.old, tc.new); got != tc.want {
				t.Fatalf("diff =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
