package host_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/agenthost/agenthost/internal/web/browsertest"
)

// TestMain fails the package's tests if any goroutine outlives them. The
// browser the /docs tests share is closed first: it would otherwise stay
// a moment after the last of them.
func TestMain(m *testing.M) {
	code := m.Run()
	browsertest.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: Errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
