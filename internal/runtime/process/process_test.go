//go:build linux

package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/runtime/runtimetest"
	"github.com/agenthost/agenthost/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(runtimetest.Main(m)) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newDriver returns a driver over root, closed when the test ends. Its
// runtimes get uids from a range of root's own, and root's temporary
// ancestors are made traversable, as a platform's data directory must be.
func newDriver(t testing.TB, root string, mod ...func(*Options)) *Driver {
	t.Helper()
	traversable(t, root)
	opts := Options{Root: root, Logger: quiet, PollInterval: 50 * time.Millisecond, UIDs: testUIDs(root)}
	for _, m := range mod {
		m(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// testUIDs is a range of 100 uids that depends on root only, so that
// drivers sharing a root agree and tests running at once rarely share uids.
func testUIDs(root string) UIDRange {
	h := fnv.New32a()
	h.Write([]byte(root))
	first := 3_000_000 + (h.Sum32()%100_000)*100
	return UIDRange{First: first, Last: first + 99}
}

// traversable makes the directories on the way to dir under the
// temporary directory traversable by other users (t.TempDir makes them
// 0700, which no runtime uid could pass).
func traversable(t testing.TB, dir string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir()) + string(filepath.Separator)
	for p := filepath.Clean(dir); strings.HasPrefix(p, tmp); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}

func harness(usePidfd bool) runtimetest.Harness {
	return runtimetest.Harness{
		New: func(t *testing.T, dir string) runtime.Driver {
			d := newDriver(t, dir)
			d.usePidfd = usePidfd
			return d
		},
		Command: func(t *testing.T, args ...string) []string {
			return append([]string{runtimetest.FakeRuntime(t)}, args...)
		},
		NotIsolated: notIsolated(),
	}
}

// notIsolated says why runtimes share a uid here, or "" when they do not.
func notIsolated() string {
	if os.Geteuid() == 0 || os.Getenv("CI") == "true" {
		return ""
	}
	return "not root: the runtimes run as this user, kept apart by the tool sandbox only"
}

func TestConformance(t *testing.T) { runtimetest.Run(t, harness(true)) }

// TestConformanceProcPolling runs the suite as on a kernel without pidfds,
// where re-attached runtimes are watched by polling /proc.
func TestConformanceProcPolling(t *testing.T) { runtimetest.Run(t, harness(false)) }

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// fakeSpec returns a spec running the fake runtime with args.
func fakeSpec(t testing.TB, id string, args ...string) runtime.Spec {
	return runtime.Spec{ID: id, Port: testutil.FreePort(t), Command: append([]string{runtimetest.FakeRuntime(t)}, args...)}
}

// start starts spec and destroys it when the test ends.
func start(t *testing.T, d *Driver, spec runtime.Spec) *runtime.Handle {
	t.Helper()
	h, err := d.Start(ctx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Destroy(context.Background(), h) })
	return h
}

func healthy(t *testing.T, h *runtime.Handle) {
	t.Helper()
	if err := runtimetest.WaitHealthy(ctx(t), h.Endpoint, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestEnvironmentExact checks the whole environment, not just the parts
// the suite can check for every driver: nothing but the base, the spec's
// variables and the driver's own.
func TestEnvironmentExact(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d := newDriver(t, root, func(o *Options) { o.Path = "/usr/bin:/bin" })
	spec := fakeSpec(t, "env")
	spec.Env = map[string]string{
		"ANTHROPIC_API_KEY":    "sk-x",
		"LANG":                 "fr_FR.UTF-8",
		"AGENTHOST_RUNTIME_ID": "spoofed",
		"AGENTHOST_PORT":       "1",
		"AGENTHOST_DATA_DIR":   "/elsewhere",
		"AGENTHOST_SANDBOX":    "none",
		"AGENTHOST_LISTEN_FD":  "7", // no socket handed over: none named
	}
	h := start(t, d, spec)
	healthy(t, h)
	ws := filepath.Join(root, "env", "workspace")
	want := map[string]string{
		"PATH":                 "/usr/bin:/bin",
		"HOME":                 ws,
		"LANG":                 "fr_FR.UTF-8", // the spec may override the base
		"TMPDIR":               filepath.Join(root, "env", "tmp"),
		"ANTHROPIC_API_KEY":    "sk-x",
		"AGENTHOST_PORT":       strconv.Itoa(spec.Port), // but not the driver's own
		"AGENTHOST_WORKSPACE":  ws,
		"AGENTHOST_DATA_DIR":   filepath.Join(root, "env", "data"),
		"AGENTHOST_RUNTIME_ID": "env",
		"AGENTHOST_SANDBOX":    "bwrap",
		// New checked bwrap as a runtime user: the runtime skips its probe.
		"AGENTHOST_SANDBOX_CHECKED": "1",
	}
	if got := runtimetest.Env(t, h); !maps.Equal(got, want) {
		t.Errorf("environment:\n got %v\nwant %v", got, want)
	}
	if got := readFile(t, filepath.Join(ws, "starts.txt")); !strings.HasPrefix(got, "start pid=") {
		t.Errorf("workspace file = %q", got)
	}
}

// TestInheritListener: a runtime that takes its socket from the driver
// (Spec.InheritListener) is reachable as soon as Start returns — the
// first request waits for it to serve instead of being refused — and a
// port another process holds fails Start, saying so.
func TestInheritListener(t *testing.T) {
	t.Parallel()
	d := newDriver(t, t.TempDir())
	spec := fakeSpec(t, "inherit", "-serve-after", "300ms")
	spec.InheritListener = true
	h := start(t, d, spec)
	// One request, no retry: refused on a runtime that binds its port
	// itself 300 ms later.
	resp, err := http.Get(h.Endpoint + "/health")
	if err != nil {
		t.Fatalf("first /health right after Start: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first /health right after Start: %s", resp.Status)
	}
	if got := runtimetest.Env(t, h)["AGENTHOST_LISTEN_FD"]; got != "3" {
		t.Errorf("AGENTHOST_LISTEN_FD = %q, want 3", got)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := fakeSpec(t, "busy")
	busy.InheritListener = true
	busy.Port = ln.Addr().(*net.TCPAddr).Port
	if h, err := d.Start(ctx(t), busy); err == nil {
		d.Destroy(context.Background(), h)
		t.Fatal("Start on a port another process listens on succeeded")
	} else if !strings.Contains(err.Error(), "binding the runtime's port") {
		t.Errorf("Start on a busy port: %v; want it to say the port could not be bound", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStartRejectsBadSpecs(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d := newDriver(t, root)
	ok := fakeSpec(t, "ok")
	tests := []struct {
		name string
		mod  func(*runtime.Spec)
	}{
		{"empty id", func(s *runtime.Spec) { s.ID = "" }},
		{"dot dot", func(s *runtime.Spec) { s.ID = ".." }},
		{"dot", func(s *runtime.Spec) { s.ID = "." }},
		{"slash", func(s *runtime.Spec) { s.ID = "a/b" }},
		{"escape", func(s *runtime.Spec) { s.ID = "../../etc" }},
		{"hidden", func(s *runtime.Spec) { s.ID = ".x" }},
		{"too long", func(s *runtime.Spec) { s.ID = strings.Repeat("a", 129) }},
		{"no command", func(s *runtime.Spec) { s.Command = nil }},
		{"empty argv0", func(s *runtime.Spec) { s.Command = []string{""} }},
		{"missing binary", func(s *runtime.Spec) { s.Command = []string{"/nonexistent/agenthost"} }},
		{"port 0", func(s *runtime.Spec) { s.Port = 0 }},
		{"port too big", func(s *runtime.Spec) { s.Port = 70000 }},
		{"env key with =", func(s *runtime.Spec) { s.Env = map[string]string{"A=B": "x"} }},
		{"env value with NUL", func(s *runtime.Spec) { s.Env = map[string]string{"SECRET": "top\x00hunter2"} }},
	}
	for _, tc := range tests {
		spec := ok
		spec.Env = nil
		tc.mod(&spec)
		h, err := d.Start(ctx(t), spec)
		if err == nil {
			d.Destroy(ctx(t), h)
			t.Errorf("%s: Start succeeded", tc.name)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error quotes an environment value: %v", tc.name, err)
		}
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("rejected specs left %d entries in the root", len(ents))
	}
}

// spawnGrandchild asks the fake runtime to start a child in a process
// group of its own, as the coding bash tool does.
func spawnGrandchild(t *testing.T, h *runtime.Handle, query string) int {
	t.Helper()
	resp, err := http.Get(h.Endpoint + "/spawn" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ PID int }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.PID == 0 {
		t.Fatalf("spawn: %v %+v", err, v)
	}
	if _, err := readStat(v.PID); err != nil {
		t.Fatalf("grandchild %d: %v", v.PID, err)
	}
	return v.PID
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := readStat(pid)
		if err != nil || st.state == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running (state %c)", pid, st.state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNothingOutlivesTheRuntime: processes the runtime put in process
// groups or sessions of their own die with it, however it ends.
func TestNothingOutlivesTheRuntime(t *testing.T) {
	t.Parallel()
	type ending = struct {
		name string
		args []string
		end  func(t *testing.T, d *Driver, h *runtime.Handle)
	}
	tests := []ending{
		{"stop", nil, func(t *testing.T, d *Driver, h *runtime.Handle) {
			if err := d.Stop(ctx(t), h, 3*time.Second); err != nil {
				t.Fatal(err)
			}
		}},
		{"crash", []string{"-exit-code", "9", "-exit-after", "1s"}, func(t *testing.T, d *Driver, h *runtime.Handle) {
			if res, err := d.Wait(ctx(t), h); err != nil || res.ExitCode != 9 {
				t.Fatalf("Wait = %+v, %v", res, err)
			}
		}},
		{"destroy", nil, func(t *testing.T, d *Driver, h *runtime.Handle) {
			if err := d.Destroy(ctx(t), h); err != nil {
				t.Fatal(err)
			}
		}},
		{"stop after recover", nil, func(t *testing.T, d *Driver, h *runtime.Handle) {
			d2 := newDriver(t, d.root)
			if err := d2.Stop(ctx(t), h, 3*time.Second); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		for _, query := range []string{"", "?setsid=1"} {
			t.Run(tc.name+query, func(t *testing.T) {
				t.Parallel()
				d := newDriver(t, t.TempDir())
				h := start(t, d, fakeSpec(t, "tree", tc.args...))
				healthy(t, h)
				pid := spawnGrandchild(t, h, query)
				tc.end(t, d, h)
				waitGone(t, pid)
			})
		}
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	d := newDriver(t, t.TempDir())
	tests := []struct {
		script string
		code   int
		err    bool
	}{
		{"exit 0", 0, false},
		{"exit 7", 7, false},
		{"kill -TERM $$", 143, true},
		{"kill -KILL $$", 137, true},
		{"kill -SEGV $$", 139, true},
	}
	for i, tc := range tests {
		spec := runtime.Spec{ID: fmt.Sprintf("sh%d", i), Port: 1, Command: []string{"sh", "-c", tc.script}}
		h := start(t, d, spec)
		res, err := d.Wait(ctx(t), h)
		if err != nil || res.ExitCode != tc.code || (res.Err != nil) != tc.err {
			t.Errorf("%q: Wait = %+v, %v; want code %d, error %v", tc.script, res, err, tc.code, tc.err)
		}
	}
}

// TestRecoverChecksIdentity: a handle whose pid now names another process
// (pid reuse), or that was written before a reboot, finds nothing.
func TestRecoverChecksIdentity(t *testing.T) {
	t.Parallel()
	d := newDriver(t, t.TempDir())
	self, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	enc := func(st state) json.RawMessage {
		b, _ := json.Marshal(st)
		return b
	}
	live := state{PID: pid, PGID: self.pgrp, SID: self.session, StartTicks: self.startTicks, BootID: d.bootID}
	tests := []struct {
		name  string
		state json.RawMessage
	}{
		{"reused pid", enc(state{PID: pid, PGID: pid, SID: self.session, StartTicks: self.startTicks + 1, BootID: d.bootID})},
		{"other session", enc(state{PID: pid, PGID: pid, SID: self.session + 1, StartTicks: self.startTicks, BootID: d.bootID})},
		{"rebooted", enc(state{PID: pid, PGID: pid, SID: self.session, StartTicks: self.startTicks, BootID: "another-boot"})},
		{"no such pid", enc(state{PID: 1 << 30, PGID: 1 << 30, SID: 1 << 30, StartTicks: 1})},
		{"init", enc(state{PID: 1, PGID: 1, SID: 1, StartTicks: 1})},
		{"garbage", json.RawMessage(`"not a state"`)},
		{"empty", nil},
	}
	for _, tc := range tests {
		h := &runtime.Handle{ID: "x", Driver: Name, State: tc.state}
		if err := d.Recover(ctx(t), h); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("%s: Recover = %v, want ErrNotFound", tc.name, err)
		}
	}
	// The same state, correct in every field, does name a live process:
	// the checks above fail for the right reason.
	if f, err := d.verify(live); err != nil {
		t.Errorf("verify(this process) = %v", err)
	} else if f != nil {
		f.Close()
	}
	if err := d.Recover(ctx(t), &runtime.Handle{ID: "x", Driver: "docker", State: enc(live)}); err == nil || errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Recover of a docker handle = %v, want a driver mismatch", err)
	}
}

// TestRecoveredExitUnknown: only a parent learns an exit status.
func TestRecoveredExitUnknown(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d1 := newDriver(t, root)
	h := start(t, d1, fakeSpec(t, "rec", "-ignore-term"))
	healthy(t, h)
	d2 := newDriver(t, root)
	if err := d2.Recover(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	if err := d2.Stop(ctx(t), h, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	res, err := d2.Wait(ctx(t), h)
	if err != nil || res.ExitCode != -1 || !errors.Is(res.Err, ErrExitUnknown) {
		t.Errorf("Wait = %+v, %v; want -1 and ErrExitUnknown", res, err)
	}
	if res, _ := d1.Wait(ctx(t), h); res.ExitCode != 137 {
		t.Errorf("the parent's Wait = %+v, want 137", res)
	}
}

// TestStartRefusesUnrecoveredRun: a platform that starts an agent without
// recovering it first must not get two runtimes on one workspace and port.
func TestStartRefusesUnrecoveredRun(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d1 := newDriver(t, root)
	spec := fakeSpec(t, "dup")
	h := start(t, d1, spec)
	healthy(t, h)

	d2 := newDriver(t, root)
	if _, err := d2.Start(ctx(t), spec); !errors.Is(err, ErrStillRunning) {
		t.Fatalf("Start over a live run = %v, want a refusal", err)
	}
	hs, err := d2.List(ctx(t))
	if err != nil || len(hs) != 1 || hs[0].ID != "dup" || string(hs[0].State) != string(h.State) {
		t.Fatalf("List = %v, %v; want the live run's handle", hs, err)
	}
	if err := d2.Destroy(ctx(t), hs[0]); err != nil {
		t.Fatal(err)
	}
	if res, _ := d1.Wait(ctx(t), h); res.ExitCode != 137 {
		t.Errorf("Destroy through a listed handle: exit = %+v, want 137", res)
	}
	h2 := start(t, d2, spec)
	healthy(t, h2)
}

func TestList(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d := newDriver(t, root)
	a := start(t, d, fakeSpec(t, "a"))
	b := start(t, d, fakeSpec(t, "b", "-exit-code", "0"))
	os.MkdirAll(filepath.Join(root, "crashed", "workspace"), 0o700) // no state.json
	os.WriteFile(filepath.Join(root, "stray-file"), nil, 0o600)
	d.Wait(ctx(t), b)
	hs, err := d.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID)
		if h.Driver != Name {
			t.Errorf("%s: driver %q", h.ID, h.Driver)
		}
	}
	if want := []string{"a", "b", "crashed"}; !slices.Equal(ids, want) {
		t.Fatalf("List ids = %v, want %v", ids, want)
	}
	if string(hs[0].State) != string(a.State) {
		t.Errorf("List state of a = %s, want %s", hs[0].State, a.State)
	}
	if err := d.Destroy(ctx(t), hs[2]); err != nil {
		t.Errorf("Destroy of a stateless leftover: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "crashed")); !os.IsNotExist(err) {
		t.Errorf("leftover directory survived Destroy: %v", err)
	}
}

// TestLogRotation: the log stays capped while the runtime writes, and
// Inspect still shows the latest lines.
func TestLogRotation(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	const max = 8 << 10
	d := newDriver(t, root, func(o *Options) {
		o.MaxLogBytes = max
		o.LogCheckInterval = 20 * time.Millisecond
		o.LogLines = 3
	})
	h := start(t, d, fakeSpec(t, "chatty"))
	healthy(t, h)
	resp, err := http.Get(h.Endpoint + "/log?bytes=200000")
	if err != nil {
		t.Fatal(err)
	}
	var written struct{ Written int }
	json.NewDecoder(resp.Body).Decode(&written)
	resp.Body.Close()
	const lineLen = 70 // "fakeruntime: log line 000000 " and 40 x's and a newline
	last := fmt.Sprintf("log line %06d", written.Written/lineLen-1)
	logPath := filepath.Join(root, "chatty", logName)
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(logPath)
		if err == nil && fi.Size() <= max {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log not rotated: %v", fi.Size())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fi, err := os.Stat(logPath + ".1"); err != nil || fi.Size() > max || fi.Size() < max/2 {
		t.Errorf("runtime.log.1: %v, %v; want the last %d bytes", fi, err, max)
	}
	st, err := d.Inspect(ctx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Logs) != 3 || !strings.Contains(st.Logs[2], last) {
		t.Errorf("Logs = %q, want the 3 last lines, ending with %q", st.Logs, last)
	}
}

// TestCloseLeavesRuntimesRunning: closing the driver is what a platform
// shutdown does, and its runtimes must outlive it.
func TestCloseLeavesRuntimesRunning(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	traversable(t, root)
	d1, err := New(Options{Root: root, Logger: quiet, UIDs: testUIDs(root)})
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, d1, fakeSpec(t, "survivor"))
	healthy(t, h)
	d2 := newDriver(t, root)
	if err := d2.Recover(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	d2.Close()
	d1.Close()
	healthy(t, h)
	if _, err := d1.Start(ctx(t), fakeSpec(t, "late")); !errors.Is(err, errClosed) {
		t.Errorf("Start after Close = %v, want errClosed", err)
	}
	d3 := newDriver(t, root)
	if err := d3.Destroy(ctx(t), h); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkStartHealthy measures Start until the runtime answers /health,
// the floor under the platform's create-to-RUNNING time.
func BenchmarkStartHealthy(b *testing.B) {
	d := newDriver(b, b.TempDir())
	spec := fakeSpec(b, "bench")
	b.Cleanup(func() {
		d.Destroy(context.Background(), &runtime.Handle{ID: spec.ID, Driver: Name})
	})
	for b.Loop() {
		h, err := d.Start(context.Background(), spec)
		if err != nil {
			b.Fatal(err)
		}
		if err := runtimetest.WaitHealthy(context.Background(), h.Endpoint, 20*time.Second); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Stop(context.Background(), h, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// TestNoGoroutineLeak runs a whole lifecycle, re-attachment included, and
// checks that every goroutine the driver started has ended. It is not
// parallel, so the count is this test's alone.
func TestNoGoroutineLeak(t *testing.T) {
	before := goruntime.NumGoroutine()
	root := t.TempDir()
	traversable(t, root)
	d1, err := New(Options{Root: root, Logger: quiet, UIDs: testUIDs(root)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := d1.Start(ctx(t), fakeSpec(t, "leak"))
	if err != nil {
		t.Fatal(err)
	}
	healthy(t, h)
	d2, err := New(Options{Root: root, Logger: quiet, UIDs: testUIDs(root)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Recover(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	if err := d2.Destroy(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	if _, err := d1.Wait(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	d1.Close()
	d2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for goruntime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", goruntime.NumGoroutine(), before, buf[:goruntime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
