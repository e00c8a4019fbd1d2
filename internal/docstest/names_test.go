package docstest

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// testNameRe is a test, benchmark or fuzz target a page names in code
	// spans ("Tested by `TestSessionPermissionsOff`").
	testNameRe = regexp.MustCompile("`((?:Test|Benchmark|Fuzz)[A-Z][A-Za-z0-9_]*)`")
	// goFileRe is a Go file a page names by its path in the repository.
	goFileRe = regexp.MustCompile("`((?:[a-z0-9_.-]+/)+[A-Za-z0-9_.-]+\\.(?:go|mjs|cjs|sh))`")
	funcRe   = regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)[A-Z][A-Za-z0-9_]*)\(`)
)

// TestNamedTests checks that the tests and files the walked pages name as
// the proof of what they say exist: a page that says "TestX checks it"
// promises a test, and a renamed or deleted one must not leave the promise
// behind.
func TestNamedTests(t *testing.T) {
	root := repoRoot(t)
	funcs := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range funcRe.FindAllSubmatch(src, -1) {
			funcs[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range walked {
		text, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range testNameRe.FindAllStringSubmatch(string(text), -1) {
			if !funcs[m[1]] {
				t.Errorf("%s names %s, which no _test.go file of the repository defines", rel, m[1])
			}
		}
		for _, m := range goFileRe.FindAllStringSubmatch(string(text), -1) {
			if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
				t.Errorf("%s names %s, which is not in the repository", rel, m[1])
			}
		}
	}
}
