package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/runtime/process"
	"github.com/agenthost/agenthost/internal/runtime/runtimetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := runtimetest.Main(m)
	platformtest.Cleanup()
	if code == 0 {
		// Nothing a test started may outlive it. Idle keep-alive
		// connections of the shared transport are a cache, not a leak.
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left after the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// rig is a platform with the real process driver running the fake
// runtime.
type rig struct {
	t      *testing.T
	opts   platformtest.Options
	driver *process.Driver
	env    *platformtest.Env
}

var nextPorts atomic.Int32

// ports gives each rig its own slice of loopback ports, so parallel
// platforms never pick the same one.
func ports() agents.PortRange {
	base := 24000 + int(nextPorts.Add(1)-1)*20
	return agents.PortRange{Min: base, Max: base + 19}
}

// dataDir is a fresh data directory that runtime users can traverse, as
// a platform run as root needs (t.TempDir's parent is 0700).
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// newRig starts a platform whose runtimes are the fake runtime with args.
func newRig(t *testing.T, pg bool, cfg agents.Config, args ...string) *rig {
	t.Helper()
	if cfg.Command == nil {
		cfg.Command = append([]string{runtimetest.FakeRuntime(t)}, args...)
	}
	return newRigWith(t, pg, cfg, nil)
}

// newRigWith starts a platform running cfg.Command as its runtimes;
// configure adjusts the platform's Config.
func newRigWith(t *testing.T, pg bool, cfg agents.Config, configure func(*platform.Config)) *rig {
	t.Helper()
	r := &rig{t: t, opts: platformtest.Options{Postgres: pg, DataDir: dataDir(t), Logs: &platformtest.Buffer{}, Configure: configure}}
	if cfg.Ports == (agents.PortRange{}) {
		cfg.Ports = ports()
	}
	if cfg.ProvisionTimeout == 0 {
		cfg.ProvisionTimeout = 20 * time.Second
	}
	if cfg.Restart.Backoff == 0 {
		cfg.Restart.Backoff = 20 * time.Millisecond
	}
	r.opts.Agents = cfg
	r.driver = r.newDriver()
	// Runs after the platform has shut down: nothing outlives the test.
	t.Cleanup(func() {
		d := r.newDriver()
		hs, _ := d.List(context.Background())
		for _, h := range hs {
			d.Destroy(context.Background(), h)
		}
	})
	r.start()
	return r
}

func (r *rig) newDriver() *process.Driver {
	d, err := process.New(process.Options{
		Root:   r.opts.DataDir + "/runtimes",
		Logger: slog.New(slog.NewTextHandler(r.opts.Logs, nil)),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { d.Close() })
	return d
}

// start starts a platform on the rig's state (again, after restart).
func (r *rig) start() {
	r.opts.Driver = r.driver
	r.env = platformtest.Start(r.t, r.opts)
	r.opts.DSN = r.env.DSN
}

// restart stops the platform (runtimes keep running) and starts a new
// one with a new driver on the same state, as a new process would.
func (r *rig) restart() {
	r.env.Stop(r.t)
	r.driver = r.newDriver()
	r.start()
	r.env.WaitReconciled(r.t)
}

// agent reads an agent's record behind the API.
func (r *rig) agent(id string) store.Agent {
	r.t.Helper()
	a, err := r.env.Server.Store().FindAgent(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

func (r *rig) handle(id string) *runtime.Handle {
	r.t.Helper()
	var h runtime.Handle
	if err := json.Unmarshal(r.agent(id).Handle, &h); err != nil {
		r.t.Fatalf("agent %s handle: %v", id, err)
	}
	return &h
}

// fake calls the fake runtime of an agent directly.
func (r *rig) fake(id, path string, v any) error {
	resp, err := http.Get(r.handle(id).Endpoint + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (r *rig) starts(id string) int {
	r.t.Helper()
	var v struct{ Starts int }
	if err := r.fake(id, "/starts", &v); err != nil {
		r.t.Fatal(err)
	}
	return v.Starts
}

func (r *rig) runtimeEnv(id string) map[string]string {
	r.t.Helper()
	var env map[string]string
	if err := r.fake(id, "/env", &env); err != nil {
		r.t.Fatal(err)
	}
	return env
}

// eventually polls cond for up to 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func status(t *testing.T, c *platformtest.Client, id string) map[string]any {
	t.Helper()
	return c.Do(t, "GET", "/api/v1/agents/"+id, nil).Want(t, 200)
}

func backends(t *testing.T, fn func(t *testing.T, pg bool)) {
	for _, pg := range []bool{false, true} {
		name := map[bool]string{false: "sqlite", true: "postgres"}[pg]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, pg)
		})
	}
}
