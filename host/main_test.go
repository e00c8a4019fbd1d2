package host_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/agenthost/agenthost/internal/mcptest"
	"github.com/agenthost/agenthost/internal/web/browsertest"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them. The
// browser the /docs tests share is closed first: it would otherwise stay
// a moment after the last of them. Run as the test MCP server
// (mcptest.EnvServe), it serves MCP instead.
func TestMain(m *testing.M) {
	mcptest.ServeStdioIfAsked()
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
