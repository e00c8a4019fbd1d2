package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/agenthost/agenthost"

// pkg is what the tests read of `go list -json`.
type pkg struct {
	ImportPath string
	Standard   bool
	Deps       []string
}

// listPackages runs `go list -deps -json ./...` from the module root and
// returns every package in the build graph by import path.
func listPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,Deps", "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[p.ImportPath] = &p
	}
	return pkgs
}

// under reports whether path is dir or a package below it (dir relative to
// the module).
func under(path, dir string) bool {
	full := module + "/" + dir
	return path == full || strings.HasPrefix(path, full+"/")
}

// matching returns the module's packages under any of dirs, sorted.
func matching(pkgs map[string]*pkg, dirs ...string) []*pkg {
	var out []*pkg
	for path, p := range pkgs {
		if slices.ContainsFunc(dirs, func(d string) bool { return under(path, d) }) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *pkg) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	return out
}

// thirdParty lists p and what it links that is not in the standard library,
// as `go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}'` does.
func thirdParty(pkgs map[string]*pkg, p *pkg) []string {
	out := []string{p.ImportPath}
	for _, d := range p.Deps {
		if dp, ok := pkgs[d]; ok && !dp.Standard {
			out = append(out, d)
		}
	}
	return out
}

// TestDependencyBudgets: importing agent or client links a small part of
// the module's dependencies. Before the providers registered where they are
// imported and trust split, agent linked 93 non-standard packages (both
// provider SDKs) and client 18 (the LLM judge, a YAML parser, a rate
// limiter); the budgets are half of that, and the named packages must not
// come back. agent.WithMCP takes an interface so that the MCP SDK is linked
// by agent/mcptools only.
func TestDependencyBudgets(t *testing.T) {
	pkgs := listPackages(t)
	tests := []struct {
		pkg       string
		budget    int
		forbidden []string
	}{
		{"agent", 46, []string{"github.com/openai/openai-go", "github.com/anthropics/anthropic-sdk-go", module + "/llm/openai", module + "/llm/anthropic", "github.com/modelcontextprotocol/go-sdk", module + "/agent/mcptools"}},
		{"client", 8, []string{module + "/llm", module + "/trust/policy", "github.com/goccy/go-yaml", "golang.org/x/time"}},
		{"relay", 8, []string{module + "/llm", module + "/trust/policy", "github.com/goccy/go-yaml", "golang.org/x/time"}},
		{"trust", 1, []string{module + "/llm", "github.com/goccy/go-yaml", "golang.org/x/time"}},
	}
	for _, tc := range tests {
		p := pkgs[module+"/"+tc.pkg]
		if p == nil {
			t.Errorf("%s: not in go list's output", tc.pkg)
			continue
		}
		deps := thirdParty(pkgs, p)
		if len(deps) > tc.budget {
			t.Errorf("%s links %d non-standard packages, budget %d:\n\t%s", tc.pkg, len(deps), tc.budget, strings.Join(deps, "\n\t"))
		}
		for _, d := range deps {
			for _, f := range tc.forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s links %s", tc.pkg, d)
				}
			}
		}
	}
}

// TestImportDirection: data flows one way, platform → runtime driver →
// runtime → host → agent → llm. The public packages never link the
// platform, the layers below the platform never reach up into it, and llm
// knows nothing of agents or hosts.
func TestImportDirection(t *testing.T) {
	pkgs := listPackages(t)
	// knownUpward are packages that still link the platform, each to be
	// removed from this list by the change that cuts the arrow. The test
	// fails when an entry is no longer needed. None is left.
	knownUpward := map[string]bool{}
	rules := []struct {
		what      string
		from      []string
		forbidden []string
	}{
		{"public packages link nothing of the platform", []string{"agent", "llm", "host", "trust", "relay", "client"}, []string{"internal/platform"}},
		{"the platform's lower layers do not reach up into it", []string{"internal/coderuntime", "internal/runtime", "host", "agent", "llm"}, []string{"internal/platform"}},
		{"llm knows nothing of agents or hosts", []string{"llm"}, []string{"agent", "host"}},
		{"agent knows nothing of hosts", []string{"agent"}, []string{"host"}},
	}
	stillUpward := map[string]bool{}
	for _, r := range rules {
		from := matching(pkgs, r.from...)
		if len(from) == 0 {
			t.Fatalf("%s: no packages under %v", r.what, r.from)
		}
		for _, p := range from {
			for _, d := range p.Deps {
				if !slices.ContainsFunc(r.forbidden, func(f string) bool { return under(d, f) }) {
					continue
				}
				if knownUpward[p.ImportPath] {
					stillUpward[p.ImportPath] = true
					continue
				}
				t.Errorf("%s: %s links %s", r.what, p.ImportPath, d)
			}
		}
	}
	for p := range knownUpward {
		if !stillUpward[p] {
			t.Errorf("%s no longer links the platform: remove it from knownUpward", p)
		}
	}
}
