package platform_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/runtime/process"
	"github.com/agenthost/agenthost/internal/testutil"
)

// TestRuntimeSettings: the platform's limits and egress settings reach
// every runtime, through its spec (the driver's limits) and environment
// (what the runtime enforces on its tools).
func TestRuntimeSettings(t *testing.T) {
	t.Parallel()
	r := newRig(t, false, agents.Config{
		Resources:   runtime.Resources{MemoryBytes: 300 << 20, NofileLimit: 777},
		DiskBytes:   5 << 30,
		EgressAllow: []string{"10.1.0.0/16", "git.internal"},
	})
	c := r.env.Client(r.env.Token(t, "acme"))
	c.Do(t, "PUT", "/api/v1/secrets", map[string]any{"key": "GITHUB_TOKEN", "value": "ghp-x"}).Want(t, 201)
	c.Do(t, "PUT", "/api/v1/secrets", map[string]any{"key": "NPM_TOKEN", "value": "npm-x"}).Want(t, 201)
	id := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a"}).Want(t, 200)["agentId"].(string)
	env := r.runtimeEnv(id)
	for k, want := range map[string]string{
		agents.EnvToolEnv:      "GITHUB_TOKEN,NPM_TOKEN",
		agents.EnvEgressAllow:  "10.1.0.0/16,git.internal",
		agents.EnvDiskLimit:    "5368709120",
		agents.EnvNofileLimit:  "777",
		"AGENTHOST_SANDBOX":    "bwrap",
		"GITHUB_TOKEN":         "ghp-x",
		agents.EnvControlToken: env[agents.EnvControlToken],
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	var st struct {
		Cgroup struct {
			MemoryBytes int64 `json:"memory_bytes"`
		}
	}
	if err := json.Unmarshal(r.handle(id).State, &st); err != nil || st.Cgroup.MemoryBytes != 300<<20 {
		t.Errorf("the runtime's cgroup memory limit = %d (%v), want %d", st.Cgroup.MemoryBytes, err, 300<<20)
	}
	var files struct{ Opened int }
	if err := r.fake(id, "/files?n=2000", &files); err != nil || files.Opened >= 777 {
		t.Errorf("/files = %+v, %v; want fewer than 777 open files", files, err)
	}
}

// TestMemoryLimitInErrorMsg: a runtime killed at its memory limit, again
// and again, leaves its agent in ERROR with a message that says why.
func TestMemoryLimitInErrorMsg(t *testing.T) {
	t.Parallel()
	r := newRig(t, false, agents.Config{
		Resources: runtime.Resources{MemoryBytes: 96 << 20},
		Restart:   agents.RestartPolicy{Attempts: 1},
	})
	c := r.env.Client(r.env.Token(t, "acme"))
	id := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "hog"}).Want(t, 200)["agentId"].(string)
	alloc := func() {
		var v any
		r.fake(id, "/alloc?mb=1024", &v) // the answer is lost with the runtime
	}
	starts := func() int {
		var v struct{ Starts int }
		r.fake(id, "/starts", &v)
		return v.Starts
	}
	alloc()
	testutil.Eventually(t, 30*time.Second, "the runtime restarted once", func() bool { return starts() == 2 })
	alloc()
	var got map[string]any
	testutil.Eventually(t, 30*time.Second, "the agent in ERROR", func() bool {
		got = status(t, c, id)
		return got["status"] == "ERROR"
	})
	msg, _ := got["errorMsg"].(string)
	if got["status"] != "ERROR" || !strings.Contains(msg, "killed: memory limit 96 MiB reached") {
		t.Fatalf("agent = %v, want ERROR saying \"killed: memory limit 96 MiB reached\"", got)
	}
}

// TestDataDirPrivate: the platform's data directory can be traversed by
// the runtimes' users on their way to their own directories but not
// listed, and the master key and the database are the platform's alone.
func TestDataDirPrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(dataDir(t), "data") // made by the driver, then the platform
	d, err := process.New(process.Options{Root: filepath.Join(dir, "runtimes"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	platformtest.Start(t, platformtest.Options{DataDir: dir, Driver: d}).WaitReconciled(t)
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{".", 0o711}, {"master.key", 0o600}, {platform.DatabaseFile, 0o600}, {platform.DatabaseFile + "-wal", 0o600}, {"runtimes", 0o711}, {"tmp", 0o700}} {
		fi, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.mode || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
			t.Errorf("%s: mode %04o, owner %d; want %04o, the platform's", f.name, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid, f.mode)
		}
	}
}
