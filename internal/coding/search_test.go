package coding

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{"*.go", []string{"a.go"}, []string{"src/a.go", "a.gox"}},
		{"**/*.go", []string{"a.go", "src/a.go", "src/pkg/deep/a.go"}, []string{"a.md"}},
		{"src/**", []string{"src/a", "src/b/c"}, []string{"other/a"}},
		{"src/**/test/*.ts", []string{"src/test/a.ts", "src/x/y/test/a.ts"}, []string{"src/test/x/a.ts"}},
		{"**/*.{ts,tsx}", []string{"a.ts", "b/c.tsx"}, []string{"a.js"}},
		{"{a,b}/{c,d}.txt", []string{"a/c.txt", "b/d.txt"}, []string{"c/c.txt"}},
		{"?.txt", []string{"a.txt"}, []string{"ab.txt"}},
		{"./docs//*.md", []string{"docs/a.md"}, []string{"a.md"}},
		{"[ab]*", []string{"apple", "banana"}, []string{"cherry"}},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			g, err := compileGlob(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.match {
				if !g.match(p) {
					t.Errorf("%q does not match %q", tc.pattern, p)
				}
			}
			for _, p := range tc.noMatch {
				if g.match(p) {
					t.Errorf("%q matches %q", tc.pattern, p)
				}
			}
		})
	}
	if _, err := compileGlob("[a"); err == nil {
		t.Error("bad pattern accepted")
	}
	g, _ := compileGlob("src/*/x.go")
	if !g.mayContain("src") || !g.mayContain("src/a") || g.mayContain("src/a/b") || g.mayContain("docs") {
		t.Error("mayContain prunes wrongly")
	}
}

func TestGlob(t *testing.T) {
	tools, root := toolbox(t)
	mustWrite(t, filepath.Join(root, ".git", "x.go"), "")
	mustWrite(t, filepath.Join(root, "node_modules", "m", "i.go"), "")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(root, "src", "main.go"), old, old); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    string
		want    string // exact output
		wantErr string
	}{
		{"newest first", `{"pattern":"**/*.go"}`, "src/pkg/lib.go\nsrc/main.go\n", ""},
		{"by name", `{"pattern":"**/*.go","sort":"name"}`, "src/main.go\nsrc/pkg/lib.go\n", ""},
		{"in path", `{"pattern":"*.go","path":"src/pkg"}`, "src/pkg/lib.go\n", ""},
		{"top level only", `{"pattern":"*.md"}`, "README.md\n", ""},
		{"asked for node_modules", `{"pattern":"node_modules/**/*.go"}`, "node_modules/m/i.go\n", ""},
		{"none", `{"pattern":"**/*.rs"}`, "No files found.", ""},
		{"escape", `{"pattern":"*","path":".."}`, "", "outside the workspace"},
		{"bad sort", `{"pattern":"*","sort":"size"}`, "", "sort must be"},
		{"bad pattern", `{"pattern":"[x"}`, "", "syntax error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := call(t, tools, "glob", tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || out != tc.want {
				t.Fatalf("glob = %q, %v; want %q", out, err, tc.want)
			}
		})
	}
}

func TestGrep(t *testing.T) {
	tools, root := toolbox(t)
	mustWrite(t, filepath.Join(root, "src", "util.go"), "package main\n\n// TODO: one\nfunc util() {}\n// todo: two\n")
	mustWrite(t, filepath.Join(root, ".git", "config"), "TODO: hidden\n")
	mustWrite(t, filepath.Join(root, "blob.bin"), "TODO\x00binary")
	mustWrite(t, filepath.Join(root, "docs", "a.md"), "TODO: docs\n")
	tests := []struct {
		name    string
		args    string
		want    string
		wantErr string
	}{
		{"plain", `{"pattern":"TODO"}`, "docs/a.md:1:TODO: docs\nsrc/util.go:3:// TODO: one\n", ""},
		{"case-insensitive", `{"pattern":"(?i)todo"}`, "docs/a.md:1:TODO: docs\nsrc/util.go:3:// TODO: one\nsrc/util.go:5:// todo: two\n", ""},
		{"include base name", `{"pattern":"TODO","include":"*.go"}`, "src/util.go:3:// TODO: one\n", ""},
		{"include path", `{"pattern":"TODO","include":"docs/*.md"}`, "docs/a.md:1:TODO: docs\n", ""},
		{"path", `{"pattern":"^package","path":"src/pkg"}`, "src/pkg/lib.go:1:package pkg\n", ""},
		{"single file", `{"pattern":"func","path":"src/util.go","include":"*.md"}`, "src/util.go:4:func util() {}\n", ""},
		{"line anchors", `{"pattern":"^func \\w+\\(\\) \\{\\}$"}`, "src/main.go:3:func main() {}\nsrc/util.go:4:func util() {}\n", ""},
		{"none", `{"pattern":"nothing-here"}`, "No matches.", ""},
		{"bad regexp", `{"pattern":"("}`, "", "bad pattern"},
		{"escape", `{"pattern":"secret","path":"outdir"}`, "", "outside the workspace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := call(t, tools, "grep", tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || out != tc.want {
				t.Fatalf("grep = %q, %v; want %q", out, err, tc.want)
			}
		})
	}
}

func TestGrepBounded(t *testing.T) {
	tools, root := toolbox(t)
	mustWrite(t, filepath.Join(root, "big.txt"), strings.Repeat("match "+strings.Repeat("y", 1000)+"\n", grepMaxMatches+50))
	out, err := call(t, tools, "grep", `{"pattern":"match"}`)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "\nbig.txt:") + 1; n != grepMaxMatches {
		t.Errorf("%d lines shown", n)
	}
	if !strings.Contains(out, "more matches not shown") || !strings.Contains(out, "…") {
		t.Errorf("no truncation notes:\n%s", out[len(out)-200:])
	}
}

func TestSearchCancelled(t *testing.T) {
	w, _ := newWorkspace(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.grep(ctx, grepArgs{Pattern: "x"}); err == nil {
		t.Error("grep ran on a cancelled context")
	}
	if _, err := w.glob(ctx, globArgs{Pattern: "**"}); err == nil {
		t.Error("glob ran on a cancelled context")
	}
}

// benchTree writes a tree of n files spread over nested directories.
func benchTree(b *testing.B, n int) *Workspace {
	b.Helper()
	root := b.TempDir()
	body := strings.Repeat("package x\n\nfunc f() int { return 42 }\n// some filler text for the scanner\n", 20)
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%d", i%10), fmt.Sprintf("e%d", i%37))
		ext := ".go"
		if i%3 == 0 {
			ext = ".md"
		}
		content := body
		if i%100 == 0 {
			content += "// NEEDLE here\n"
		}
		mustWrite(b, filepath.Join(dir, fmt.Sprintf("f%d%s", i, ext)), content)
	}
	w, err := OpenWorkspace(root)
	if err != nil {
		b.Fatal(err)
	}
	return w
}

func BenchmarkGrep(b *testing.B) {
	w := benchTree(b, 3000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		out, err := w.grep(ctx, grepArgs{Pattern: "NEEDLE", Include: "*.go"})
		if err != nil || !strings.Contains(out, "NEEDLE") {
			b.Fatal(err, out)
		}
	}
}

func BenchmarkGlob(b *testing.B) {
	w := benchTree(b, 3000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		out, err := w.glob(ctx, globArgs{Pattern: "d3/**/*.go"})
		if err != nil || !strings.Contains(out, ".go") {
			b.Fatal(err, out)
		}
	}
}
