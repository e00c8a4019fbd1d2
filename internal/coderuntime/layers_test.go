package coderuntime

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers checks that data flows one way (docs/architecture.md): the
// platform drives runtimes, never the other way round, so nothing below
// it — the runtime, the engine, host and the public packages — imports
// anything under internal/platform.
func TestLayers(t *testing.T) {
	t.Parallel()
	const mod = "github.com/agenthost/agenthost/"
	below := []string{"agent", "llm/...", "host/...", "trust/...", "relay/...", "client/...",
		"internal/engine/...", "internal/coderuntime/...", "internal/coding/...", "internal/store/...",
		"internal/httpjson/...", "internal/sse/...", "internal/ids/...", "internal/sandbox/...", "internal/egress/..."}
	args := []string{"list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`}
	for _, p := range below {
		args = append(args, "./../../"+p)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, mod+"internal/platform") && !strings.HasPrefix(pkg, mod+"internal/platform") {
				t.Errorf("%s imports %s: only the platform and what is above it may", pkg, imp)
			}
		}
	}
}
