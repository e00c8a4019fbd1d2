package host_test

import (
	"testing"

	"github.com/agenthost/agenthost/internal/mcptest"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them. Run
// as the test MCP server (mcptest.EnvServe), it serves MCP instead.
func TestMain(m *testing.M) {
	mcptest.ServeStdioIfAsked()
	goleak.VerifyTestMain(m)
}
