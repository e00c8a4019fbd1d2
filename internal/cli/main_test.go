package cli

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/agenthost/agenthost/internal/runtime/docker"
)

// envTestMain, set to "1", makes the test binary run as the agenthost
// command, so tests can start `agenthost mcp` as a real process for
// clients (the MCP TypeScript SDK) that spawn their server.
const envTestMain = "AGENTHOST_CLI_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envTestMain) == "1" {
		os.Exit(Main(os.Args[1:]))
	}
	code := m.Run()
	staticBin.cleanup()
	os.Exit(code)
}

// staticBin is a static agenthost built from this module once per test
// binary, with the flags `agenthost image build` uses (so the build cache
// is shared with the Docker driver's tests): for tests that run the real
// process (signals) and for the image.
var staticBin struct {
	once    sync.Once
	path    string
	cleanup func()
	err     error
}

func init() { staticBin.cleanup = func() {} }

func agenthostBinary(t *testing.T) string {
	t.Helper()
	staticBin.once.Do(func() {
		staticBin.path, staticBin.cleanup, staticBin.err = docker.StaticBinary(context.Background(),
			docker.BinaryOptions{FromSource: true, Source: repoRoot(t), Ldflags: "-s -w"})
	})
	if staticBin.err != nil {
		t.Fatal(staticBin.err)
	}
	return staticBin.path
}

// repoRoot is the module's root: two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}
