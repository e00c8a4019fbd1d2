package agentpage_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/runtime/process"
)

// platformEnv is a real platform; with runtimes, its agents are the real
// coding runtime (offline model) under the process driver.
type platformEnv struct {
	*platformtest.Env
	dir string
}

func startPlatform(t *testing.T, runtimes bool) *platformEnv {
	t.Helper()
	dir := t.TempDir()
	logs := &platformtest.Buffer{}
	o := platformtest.Options{DataDir: dir, Logs: logs}
	if runtimes {
		if testing.Short() {
			t.Skip("builds and runs the real coding runtime")
		}
		// Runtimes run under uids of their own as root: they must
		// traverse the data directory's parent (t.TempDir makes it 0700).
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			t.Fatal(err)
		}
		d, err := process.New(process.Options{Root: dir + "/runtimes", Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			hs, _ := d.List(context.Background())
			for _, h := range hs {
				d.Destroy(context.Background(), h)
			}
			d.Close()
		})
		base := 43000 + (os.Getpid()%300)*20
		o.Driver = d
		o.Agents = agents.Config{
			Command:          []string{platformtest.Agenthost(t), "serve", "--role", "coding"},
			Ports:            agents.PortRange{Min: base, Max: base + 19},
			ProvisionTimeout: 60 * time.Second,
		}
	}
	env := platformtest.Start(t, o)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("platform logs:\n%s", logs.String())
		}
	})
	return &platformEnv{Env: env, dir: dir}
}

// workspace is an agent's workspace directory under the process driver.
func (e *platformEnv) workspace(agentID string) string {
	return filepath.Join(e.dir, "runtimes", agentID, "workspace")
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
