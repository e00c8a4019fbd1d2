package platformtest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/runtime/process"
)

// CodingRuntimes sets o up so that the platform's agents are the real
// coding runtime (agenthost serve --role coding, offline model) under the
// process driver, in o.DataDir/runtimes, on the 20 ports from portBase;
// every runtime is destroyed when the test ends. A package that runs
// beside others picks a portBase of its own. It skips under -short: it
// builds and runs the real runtime. o.DataDir must be set.
func CodingRuntimes(t *testing.T, o *Options, portBase int) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real coding runtime")
	}
	if o.Logs == nil {
		o.Logs = &Buffer{}
	}
	// Runtimes run under uids of their own as root: they must traverse
	// the data directory's parent (t.TempDir makes it 0700).
	if err := os.Chmod(filepath.Dir(o.DataDir), 0o711); err != nil {
		t.Fatal(err)
	}
	d, err := process.New(process.Options{Root: filepath.Join(o.DataDir, "runtimes"), Logger: slog.New(slog.NewTextHandler(o.Logs, nil))})
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
	o.Driver = d
	o.Agents = agents.Config{
		Command:          []string{Agenthost(t), "serve", "--role", "coding"},
		Ports:            agents.PortRange{Min: portBase, Max: portBase + 19},
		ProvisionTimeout: 60 * time.Second,
	}
}

// StartCoding starts a platform on a new data directory; with runtimes,
// its agents are the real coding runtime (CodingRuntimes, from portBase).
// When the test fails, the platform's logs are in its output.
func StartCoding(t *testing.T, runtimes bool, portBase int) *Env {
	t.Helper()
	o := Options{DataDir: t.TempDir(), Logs: &Buffer{}}
	if runtimes {
		CodingRuntimes(t, &o, portBase)
	}
	env := Start(t, o)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("platform logs:\n%s", o.Logs.String())
		}
	})
	return env
}
