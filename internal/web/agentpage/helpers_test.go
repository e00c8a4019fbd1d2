package agentpage_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

// platformEnv is a real platform; with runtimes, its agents are the real
// coding runtime (offline model) under the process driver.
type platformEnv struct {
	*platformtest.Env
}

func startPlatform(t *testing.T, runtimes bool) *platformEnv {
	t.Helper()
	return &platformEnv{platformtest.StartCoding(t, runtimes, 43000+(os.Getpid()%300)*20)}
}

// workspace is an agent's workspace directory under the process driver.
func (e *platformEnv) workspace(agentID string) string {
	return filepath.Join(e.DataDir, "runtimes", agentID, "workspace")
}

// createAgent creates a RUNNING agent of token's organization.
func createAgent(t *testing.T, env *platformEnv, token string, body map[string]any) string {
	t.Helper()
	m := env.Client(token).Do(t, "POST", "/api/v1/agents", body).Want(t, 200)
	id, _ := m["agentId"].(string)
	if id == "" {
		t.Fatalf("create: %v", m)
	}
	return id
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
