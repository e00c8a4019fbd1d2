package platformtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Agenthost returns the path of an agenthost binary built from this
// module, building it on first use, once per test binary: the real
// runtime (`serve --role coding`) for the platform's end-to-end tests, and
// the platform itself for tests that kill it. Call Cleanup from TestMain.
func Agenthost(t testing.TB) string {
	t.Helper()
	path, err := BuildAgenthost()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// BinaryEnv names a prebuilt agenthost binary to use instead of building
// one (CI builds it once for several packages).
const BinaryEnv = "AGENTHOST_TEST_BINARY"

// BuildAgenthost is Agenthost for callers without a testing.TB.
func BuildAgenthost() (string, error) {
	bin.once.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			bin.path, bin.err = filepath.Abs(p)
			return
		}
		bin.dir, bin.err = os.MkdirTemp("", "agenthost-bin-")
		if bin.err != nil {
			return
		}
		// Runtimes run under uids of their own when the tests run as
		// root, and some run the binary by this path (a runtime command
		// that wraps it in a script).
		if bin.err = os.Chmod(bin.dir, 0o755); bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "agenthost")
		cmd := exec.Command("go", "build", "-o", bin.path, "github.com/agenthost/agenthost/cmd/agenthost")
		if out, err := cmd.CombinedOutput(); err != nil {
			bin.err = fmt.Errorf("go build agenthost: %w\n%s", err, out)
		}
	})
	return bin.path, bin.err
}

// Cleanup removes the binary Agenthost built.
func Cleanup() {
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
}
