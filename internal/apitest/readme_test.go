package apitest

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's example blocks from the Examples")

// exampleMarker precedes each Go block of the README:
//
//	<!-- example: host ExampleServe -->
//	```go
//	…
//	```
//
// names the package directory (relative to the module) and the Example
// whose file the block is.
var exampleMarker = regexp.MustCompile("(?m)^<!-- example: (\\S+) (Example\\w*) -->\n```go\n((?s:.*?))```\n")

// TestReadmeExamples: every Go block of the README is a runnable Example,
// shown as the program `go doc` would: the Example's file with package
// main, the Example renamed main and its Output comment left out. The
// Examples run with the package's tests (those with an Output comment are
// checked; ExampleServe, which serves until interrupted, is compiled).
// Run with -update to rewrite the blocks after changing an Example.
func TestReadmeExamples(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := exampleMarker.FindAllSubmatchIndex(readme, -1)
	if n := strings.Count(string(readme), "```go\n"); n != len(blocks) {
		t.Errorf("README has %d Go blocks, %d of them behind an <!-- example: DIR ExampleName --> marker: every Go block must be an Example", n, len(blocks))
	}
	if len(blocks) == 0 {
		t.Fatal("no example blocks in the README")
	}
	var out bytes.Buffer
	last := 0
	for _, b := range blocks {
		dir, name := string(readme[b[2]:b[3]]), string(readme[b[4]:b[5]])
		want, err := renderExample(filepath.Join("..", "..", filepath.FromSlash(dir)), name)
		if err != nil {
			t.Errorf("%s %s: %v", dir, name, err)
			continue
		}
		out.Write(readme[last:b[6]])
		out.Write(want)
		last = b[7]
		got, err := format.Source(readme[b[6]:b[7]])
		if err != nil {
			t.Errorf("README block for %s %s is not Go: %v", dir, name, err)
			continue
		}
		if !bytes.Equal(got, want) && !*update {
			t.Errorf("README block for %s %s differs from the Example (go test ./internal/apitest -run TestReadmeExamples -update rewrites it):\n--- README\n%s\n--- Example\n%s", dir, name, got, want)
		}
	}
	out.Write(readme[last:])
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// renderExample finds the file in dir that declares the Example name and
// returns it as a program: a whole-file example (one Example, no tests)
// with package main, the Example as main, without its doc and Output
// comments.
func renderExample(dir, name string) ([]byte, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, f, src, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		var ex *ast.FuncDecl
		var funcs []string
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				funcs = append(funcs, fd.Name.Name)
				if fd.Name.Name == name && fd.Recv == nil {
					ex = fd
				}
			}
		}
		if ex == nil {
			continue
		}
		if len(funcs) != 1 {
			return nil, fmt.Errorf("%s: a README example must be alone in its file (a whole-file example), found %v", f, funcs)
		}
		if ex.Body == nil {
			return nil, fmt.Errorf("%s: %s has no body", f, name)
		}
		// Cut, from the end backwards: the Output comment, the func name,
		// the doc comment, the package clause.
		type cut struct {
			from, to int
			with     string
		}
		var cuts []cut
		for _, cg := range file.Comments {
			if cg.Pos() > ex.Body.Lbrace && cg.End() < ex.Body.Rbrace && strings.HasPrefix(cg.List[0].Text, "// Output:") {
				from := lineStart(src, fset.Position(cg.Pos()).Offset)
				cuts = append(cuts, cut{from, lineEnd(src, fset.Position(cg.End()).Offset), ""})
			}
		}
		cuts = append(cuts, cut{fset.Position(ex.Name.Pos()).Offset, fset.Position(ex.Name.End()).Offset, "main"})
		if ex.Doc != nil {
			cuts = append(cuts, cut{fset.Position(ex.Doc.Pos()).Offset, lineEnd(src, fset.Position(ex.Doc.End()).Offset), ""})
		}
		cuts = append(cuts, cut{fset.Position(file.Package).Offset, fset.Position(file.Name.End()).Offset, "package main"})
		slices.SortFunc(cuts, func(a, b cut) int { return b.from - a.from }) // last first
		out := src
		for _, c := range cuts {
			out = append(append(append([]byte{}, out[:c.from]...), c.with...), out[c.to:]...)
		}
		return format.Source(out)
	}
	return nil, fmt.Errorf("no %s in %s", name, dir)
}

// lineEnd returns the offset just past the newline that ends the line
// holding off.
func lineEnd(src []byte, off int) int {
	if i := bytes.IndexByte(src[off:], '\n'); i >= 0 {
		return off + i + 1
	}
	return len(src)
}

// lineStart returns the offset of the start of the line holding off.
func lineStart(src []byte, off int) int {
	return bytes.LastIndexByte(src[:off], '\n') + 1
}
