package docstest

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A code block a reader copies (a JavaScript client, say) is only as good as
// the test that runs it. A page says which file of the tests' testdata a
// block is with a comment just above its fence:
//
//	<!-- snippet: host/testdata/mcpjs/http.cjs -->
//
// and TestSnippets checks that the block is that file, byte for byte: the
// testdata is the source of truth, and the page shows what the test runs.
var snippetRe = regexp.MustCompile(`^<!--\s*snippet:\s*(\S+)\s*-->$`)

// snippet is one marked code block of a page.
type snippet struct {
	line int    // line of the opening fence
	file string // the testdata file, from the repository's root
	body string // the block's text, each line ending in "\n"
}

// snippets returns the marked code blocks of a page, whatever their
// language.
func snippets(text string) []snippet {
	var (
		out  []snippet
		file string
		in   *snippet
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if in != nil {
			if strings.HasPrefix(line, "```") {
				out = append(out, *in)
				in = nil
				continue
			}
			in.body += line + "\n"
			continue
		}
		if m := snippetRe.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			file = m[1]
			continue
		}
		if strings.HasPrefix(line, "```") && file != "" {
			in = &snippet{line: n, file: file}
		}
		if strings.TrimSpace(line) != "" {
			file = ""
		}
	}
	return out
}

// pins are the npm packages the pages tell readers to install, and the
// scripts that install them for the tests that run the pages' snippets: the
// page names the version the script pins.
var pins = []struct{ page, script, pkg string }{
	{"docs/a2a.md", "scripts/service-a2a.sh", "@a2a-js/sdk"},
	{"docs/mcp.md", "scripts/service-mcpjs.sh", "@modelcontextprotocol/sdk"},
}

var versionRe = regexp.MustCompile(`(?m)^version=(\S+)$`)

// TestSnippets checks the marked code blocks of every page against the
// testdata files they name, and the versions of the packages the pages
// tell readers to install against the ones the tests install.
func TestSnippets(t *testing.T) {
	root := repoRoot(t)
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{filepath.Join(root, "README.md")}, pages...)
	seen := map[string]bool{}
	for _, p := range pages {
		rel, _ := filepath.Rel(root, p)
		text, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range snippets(string(text)) {
			seen[rel] = true
			want, err := os.ReadFile(filepath.Join(root, s.file))
			if err != nil {
				t.Errorf("%s:%d: the snippet names %s: %v", rel, s.line, s.file, err)
				continue
			}
			if s.body != string(want) {
				t.Errorf("%s:%d: this block differs from %s, which the tests run: copy the file into the block", rel, s.line, s.file)
			}
		}
	}
	for _, page := range []string{"docs/a2a.md", "docs/mcp.md"} {
		if !seen[page] {
			t.Errorf("%s: no <!-- snippet: FILE --> block: its client code is the testdata the tests run", page)
		}
	}
	for _, p := range pins {
		script, err := os.ReadFile(filepath.Join(root, p.script))
		if err != nil {
			t.Fatal(err)
		}
		m := versionRe.FindSubmatch(script)
		if m == nil {
			t.Fatalf("%s: no version= line", p.script)
		}
		page, err := os.ReadFile(filepath.Join(root, p.page))
		if err != nil {
			t.Fatal(err)
		}
		want := p.pkg + "@" + string(m[1])
		for _, got := range regexp.MustCompile(regexp.QuoteMeta(p.pkg)+`@[0-9][^\s`+"`"+`)]*`).FindAllString(string(page), -1) {
			if got != want {
				t.Errorf("%s names %s, but %s installs %s for the tests", p.page, got, p.script, want)
			}
		}
		if !strings.Contains(string(page), "npm install "+want) {
			t.Errorf("%s: no `npm install %s` (the version %s installs for the tests)", p.page, want, p.script)
		}
	}
}
