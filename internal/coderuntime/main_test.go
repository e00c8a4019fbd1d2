package coderuntime

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/agenthost/agenthost/internal/mcptest"
	"github.com/agenthost/agenthost/internal/sandbox"
	"go.uber.org/goleak"
)

// testSandbox is the AGENTHOST_SANDBOX of the tests' runtimes: bwrap where
// bubblewrap works (always under CI=true), none elsewhere.
var testSandbox = SandboxBwrap

func TestMain(m *testing.M) {
	sandbox.RunInitIfAsked()    // the sandbox's init is this test binary
	mcptest.ServeStdioIfAsked() // and so is the MCP server of mcp_test.go
	if err := sandbox.Probe(context.Background()); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "CI=true and no tool sandbox: %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "no tool sandbox here, testing without one: %v\n", err)
		testSandbox = SandboxNone
	}
	// Nothing a test started may outlive it: turns, sandboxes, event
	// streams, the egress proxy.
	goleak.VerifyTestMain(m)
}
