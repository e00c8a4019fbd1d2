package cli

import (
	"os"
	"testing"
)

// envTestMain, set to "1", makes the test binary run as the agenthost
// command, so tests can start `agenthost mcp` as a real process for
// clients (the MCP TypeScript SDK) that spawn their server.
const envTestMain = "AGENTHOST_CLI_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envTestMain) == "1" {
		os.Exit(Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}
