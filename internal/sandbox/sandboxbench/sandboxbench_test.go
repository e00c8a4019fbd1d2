package sandboxbench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/bench"
	"github.com/agenthost/agenthost/internal/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.RunInitIfAsked()
	os.Exit(m.Run())
}

// TestScenario: the scenario runs and reports its three figures, the
// sandboxed ones beside the plain baseline.
func TestScenario(t *testing.T) {
	if err := sandbox.Probe(context.Background()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no sandbox: %v", err)
		}
		t.Skipf("no sandbox here: %v", err)
	}
	var out strings.Builder
	if err := bench.Run(context.Background(), &out, name, bench.Options{Duration: 30 * time.Millisecond}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"plain bash -c true p50", "in a warm sandbox p50", "in a fresh sandbox p50", "added"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("no %q in:\n%s", want, out.String())
		}
	}
}
