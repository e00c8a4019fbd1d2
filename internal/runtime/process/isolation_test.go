//go:build linux

package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/runtime/runtimetest"
)

// probe asks a fake runtime to do something on its own behalf and returns
// the status and body of its answer.
func probe(t *testing.T, h *runtime.Handle, path string, query url.Values) (int, string) {
	t.Helper()
	resp, err := http.Get(h.Endpoint + path + "?" + query.Encode())
	if err != nil {
		t.Fatalf("%s %s: %v", h.ID, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func probeJSON(t *testing.T, h *runtime.Handle, path string, query url.Values, v any) {
	t.Helper()
	code, body := probe(t, h, path, query)
	if code != http.StatusOK {
		t.Fatalf("%s %s: %d %s", h.ID, path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s %s: %v: %s", h.ID, path, err, body)
	}
}

type who struct {
	UID, GID, PID int
	Groups        []int
	CapEff        string
}

func idOf(t *testing.T, h *runtime.Handle) who {
	t.Helper()
	var id who
	probeJSON(t, h, "/id", nil, &id)
	return id
}

// needRoot skips tests of the uid separation, which only a root platform
// makes; under CI=true, where the tests run as root, it fails instead.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the isolation tests need root (CI runs as root)")
	}
	t.Skip("needs root: runtimes run under their own uids only when the platform runs as root")
}

// platformDir lays out a platform's data directory as the platform does:
// the master key and the database (0600) beside the driver's root.
func platformDir(t *testing.T) (data, root string) {
	t.Helper()
	data = traversableDir(t)
	for name, content := range map[string]string{"master.key": "the-master-key", "platform.db": "every-org-secret"} {
		if err := os.WriteFile(filepath.Join(data, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return data, filepath.Join(data, "runtimes")
}

// traversableDir is a fresh directory that other users may traverse (not
// list), as a platform's data directory is: t.TempDir's own parent is 0700.
func traversableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRuntimesCannotReachEachOtherOrThePlatform plays one organisation's
// runtime attacking another's and the platform's, with the bash of its
// agent as the weapon (here the fake runtime's own requests, which run
// with the runtime's identity: what a tool could do without the tool
// sandbox). Every attempt must fail.
func TestRuntimesCannotReachEachOtherOrThePlatform(t *testing.T) {
	needRoot(t)
	t.Parallel()
	data, root := platformDir(t)
	d := newDriver(t, root)
	a, b := fakeSpec(t, "attacker"), fakeSpec(t, "victim")
	a.Env = map[string]string{"ORG_A_TOKEN": "secret-of-a"}
	b.Env = map[string]string{"ORG_B_TOKEN": "secret-of-b-" + strconv.Itoa(os.Getpid())}
	ha, hb := start(t, d, a), start(t, d, b)
	healthy(t, ha)
	healthy(t, hb)
	ida, idb := idOf(t, ha), idOf(t, hb)
	if ida.UID == 0 || idb.UID == 0 || ida.UID == idb.UID || ida.GID == idb.GID || ida.UID == os.Geteuid() {
		t.Errorf("uids: attacker %+v, victim %+v, platform %d: want two distinct unprivileged uids", ida, idb, os.Geteuid())
	}
	victimWS := filepath.Join(root, "victim", "workspace")
	reads := []string{
		filepath.Join(victimWS, "canary.txt"),
		filepath.Join(victimWS, "starts.txt"),
		filepath.Join(root, "victim", "data"),
		filepath.Join(root, "victim", stateName),
		filepath.Join(root, "victim", logName),
		filepath.Join(data, "master.key"),
		filepath.Join(data, "platform.db"),
		fmt.Sprintf("/proc/%d/environ", idb.PID),
		fmt.Sprintf("/proc/%d/environ", os.Getpid()),
		fmt.Sprintf("/proc/%d/mem", os.Getpid()),
	}
	for _, p := range reads {
		if code, body := probe(t, ha, "/read", url.Values{"path": {p}}); code == http.StatusOK {
			t.Errorf("the attacker read %s: %.80q", p, body)
		}
	}
	for _, p := range []string{root, data, filepath.Join(root, "victim"), victimWS} {
		if code, body := probe(t, ha, "/list", url.Values{"path": {p}}); code == http.StatusOK {
			t.Errorf("the attacker listed %s: %s", p, body)
		}
	}
	for name, pid := range map[string]int{"the platform": os.Getpid(), "the victim": idb.PID} {
		if code, _ := probe(t, ha, "/signal", url.Values{"pid": {strconv.Itoa(pid)}}); code == http.StatusOK {
			t.Errorf("the attacker may signal %s (pid %d)", name, pid)
		}
	}
	// Control: the attacker still reads its own workspace, and the victim
	// is unharmed.
	own := filepath.Join(root, "attacker", "workspace", "canary.txt")
	if code, body := probe(t, ha, "/read", url.Values{"path": {own}}); code != http.StatusOK || body != "attacker" {
		t.Errorf("the attacker cannot read its own workspace: %d %q", code, body)
	}
	healthy(t, hb)
}

// TestMemoryLimitKillsTheRuntime: a runtime that exceeds its memory limit
// is killed and its exit says why; another runtime is unaffected.
func TestMemoryLimitKillsTheRuntime(t *testing.T) {
	t.Parallel()
	root := traversableDir(t)
	d := newDriver(t, root)
	hog, calm := fakeSpec(t, "hog"), fakeSpec(t, "calm")
	hog.Resources.MemoryBytes = 64 << 20
	calm.Resources.MemoryBytes = 512 << 20
	hh, hc := start(t, d, hog), start(t, d, calm)
	healthy(t, hh)
	healthy(t, hc)
	resp, err := http.Get(hh.Endpoint + "/alloc?mb=512")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("alloc answered %s %s", resp.Status, body)
	}
	res, err := d.Wait(ctx(t), hh)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 137 || res.Err == nil || !strings.Contains(res.Err.Error(), "memory limit 64 MiB reached") {
		t.Errorf("Wait = %+v (%v), want 137 and \"killed: memory limit 64 MiB reached\"", res, res.Err)
	}
	st, err := d.Inspect(ctx(t), hh)
	if err != nil || st.ExitCode != 137 || !strings.Contains(strings.Join(st.Logs, "\n"), "killed: memory limit 64 MiB reached") {
		t.Errorf("Inspect = %+v, %v; want exit 137 and the reason in the last lines", st, err)
	}
	healthy(t, hc)
}

// owner returns path's uid, gid and permission bits.
func owner(t *testing.T, path string) (uint32, uint32, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, fi.Mode().Perm()
}

// TestIdentities: every runtime has its own uid, kept across stop and
// start, never given again (not after Destroy, not by a later driver on
// the same root); what is the runtime's is its own and 0700, what is the
// platform's stays root's.
func TestIdentities(t *testing.T) {
	needRoot(t)
	t.Parallel()
	root := traversableDir(t)
	d := newDriver(t, root)
	r := testUIDs(root)
	spec := fakeSpec(t, "one")
	h := start(t, d, spec)
	healthy(t, h)
	first := idOf(t, h)
	if first.UID != int(r.First)+1 || first.GID != first.UID {
		t.Errorf("first runtime: %+v, want uid and gid %d (the range's first is kept for the check)", first, r.First+1)
	}
	if len(first.Groups) != 0 || strings.Trim(first.CapEff, "0") != "" {
		t.Errorf("runtime's groups %v, capabilities %s: want none", first.Groups, first.CapEff)
	}
	wantMode := func(path string, uid uint32, mode os.FileMode) {
		t.Helper()
		u, g, m := owner(t, path)
		if u != uid || g != uid || m != mode {
			t.Errorf("%s: owner %d:%d mode %04o, want %d:%d %04o", path, u, g, m, uid, uid, mode)
		}
	}
	dir := filepath.Join(root, "one")
	wantMode(root, 0, 0o711)
	wantMode(dir, 0, 0o711)
	for _, sub := range []string{"workspace", "tmp", "data"} {
		wantMode(filepath.Join(dir, sub), uint32(first.UID), 0o700)
	}
	for _, f := range []string{stateName, logName, identityName} {
		wantMode(filepath.Join(dir, f), 0, 0o600)
	}
	wantMode(filepath.Join(root, uidsName), 0, 0o600)
	// The runtime runs a copy of its binary that every runtime uid can
	// run (the fake runtime itself lives in a 0700 temporary directory).
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", first.PID))
	if err != nil || filepath.Dir(exe) != filepath.Join(root, binName) {
		t.Errorf("runtime's executable = %q, %v; want a copy in %s", exe, err, filepath.Join(root, binName))
	} else {
		wantMode(exe, 0, 0o755)
	}

	if err := d.Stop(ctx(t), h, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	h = start(t, d, spec)
	healthy(t, h)
	if again := idOf(t, h); again.UID != first.UID {
		t.Errorf("after stop and start: uid %d, want %d", again.UID, first.UID)
	}
	if err := d.Destroy(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	h = start(t, d, spec)
	healthy(t, h)
	reborn := idOf(t, h)
	other := start(t, newDriver(t, root), fakeSpec(t, "two"))
	healthy(t, other)
	two := idOf(t, other)
	if reborn.UID != first.UID+1 || two.UID != first.UID+2 {
		t.Errorf("after Destroy: uid %d, and a later driver's runtime %d; want %d and %d (never reused)", reborn.UID, two.UID, first.UID+1, first.UID+2)
	}
}

// TestUIDRangeUsedUp: a range with room for one runtime refuses a second
// with a message that says what to do.
func TestUIDRangeUsedUp(t *testing.T) {
	needRoot(t)
	t.Parallel()
	root := traversableDir(t)
	r := testUIDs(root)
	d := newDriver(t, root, func(o *Options) { o.UIDs = UIDRange{r.First, r.First + 1} })
	start(t, d, fakeSpec(t, "a"))
	if h, err := d.Start(ctx(t), fakeSpec(t, "b")); err == nil || !strings.Contains(err.Error(), "--runtime-uids") {
		if h != nil {
			d.Destroy(ctx(t), h)
		}
		t.Fatalf("Start past the range = %v, want a refusal naming --runtime-uids", err)
	}
}

// TestLimits: the runtime is in a cgroup with its spec's limits (or the
// driver's defaults), and they hold.
func TestLimits(t *testing.T) {
	t.Parallel()
	root := traversableDir(t)
	d := newDriver(t, root, func(o *Options) { o.Resources = runtime.Resources{MemoryBytes: 300 << 20} })
	spec := fakeSpec(t, "limited")
	spec.Resources = runtime.Resources{NanoCPUs: 5e8, PidsLimit: 48, NofileLimit: 200}
	h := start(t, d, spec)
	healthy(t, h)
	var st state
	if err := json.Unmarshal(h.State, &st); err != nil || st.Cgroup == nil {
		t.Fatalf("state %s: no cgroup (%v)", h.State, err)
	}
	pid := idOf(t, h).PID
	own, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range st.Cgroup.Dirs {
		if !inCgroup(own, dir) {
			t.Errorf("runtime is not in %s: %s", dir, own)
		}
	}
	read := func(dir, file string) string {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if st.Cgroup.V2 {
		dir := st.Cgroup.Dirs[0]
		for file, want := range map[string]string{"memory.max": "314572800", "pids.max": "48", "cpu.max": "50000 100000"} {
			if got := read(dir, file); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
	} else {
		mem, pids, cpu := st.Cgroup.Dirs[0], st.Cgroup.Dirs[1], st.Cgroup.Dirs[2]
		for _, c := range []struct{ dir, file, want string }{
			{mem, "memory.limit_in_bytes", "314572800"}, // the driver's default
			{pids, "pids.max", "48"},
			{cpu, "cpu.cfs_quota_us", "50000"},
			{cpu, "cpu.cfs_period_us", "100000"},
		} {
			if got := read(c.dir, c.file); got != c.want {
				t.Errorf("%s = %q, want %q", c.file, got, c.want)
			}
		}
	}
	var files struct {
		Opened int
		Error  string
	}
	probeJSON(t, h, "/files", url.Values{"n": {"1000"}}, &files)
	if files.Opened >= 200 || files.Error == "" {
		t.Errorf("/files = %+v, want fewer than 200 open files and an error", files)
	}
	if err := d.Destroy(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	for _, dir := range st.Cgroup.Dirs {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("cgroup %s survived Destroy: %v", dir, err)
		}
	}
}

// TestLeftoverCgroup: a cgroup left by a platform that crashed, with a
// process still in it, neither blocks the next start nor survives it.
func TestLeftoverCgroup(t *testing.T) {
	t.Parallel()
	root := traversableDir(t)
	d := newDriver(t, root)
	cg := d.iso.cgroups.of("crashed")
	if err := d.iso.cgroups.enable(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range cg.Dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { cg.destroy() })
	stray := exec.Command("sleep", "600")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	defer stray.Process.Kill()
	exited := make(chan struct{})
	go func() { stray.Wait(); close(exited) }()
	if err := cg.add(stray.Process.Pid); err != nil {
		t.Fatal(err)
	}
	h := start(t, d, fakeSpec(t, "crashed"))
	healthy(t, h)
	<-exited // killed by Start, or the test times out
}

// TestFailClosed: New refuses a machine where runtimes cannot be
// isolated, saying what is missing and how to get it; with
// InsecureNoSandbox it starts anyway and tells runtimes so.
func TestFailClosed(t *testing.T) {
	t.Parallel()
	tools := traversableDir(t)
	failing := filepath.Join(tools, "bwrap")
	script := "#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n"
	if err := os.WriteFile(failing, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		root bool // needs root
		mod  func(t *testing.T, o *Options)
		want []string
	}{
		{"no bwrap", false, func(t *testing.T, o *Options) { o.Bwrap = "/nonexistent/bwrap" },
			[]string{"bubblewrap", "not installed", "apt-get install bubblewrap"}},
		{"bwrap without user namespaces", false, func(t *testing.T, o *Options) { o.Bwrap = failing },
			[]string{"cannot create user, pid and network namespaces", "No permissions to create a new namespace", "user namespaces"}},
		{"no cgroups", false, func(t *testing.T, o *Options) { o.CgroupParent = "/cgroup.procs" },
			[]string{"cgroups", "not usable", "Delegate=yes"}},
		{"root unreachable", true, func(t *testing.T, o *Options) {
			hidden := filepath.Join(t.TempDir(), "private") // as /root is
			if err := os.Mkdir(hidden, 0o700); err != nil {
				t.Fatal(err)
			}
			o.Root = filepath.Join(hidden, "runtimes")
		}, []string{"cannot traverse", "chmod o+x", "--data"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				needRoot(t)
			}
			opts := Options{Root: filepath.Join(traversableDir(t), "runtimes"), Logger: quiet}
			tc.mod(t, &opts)
			opts.UIDs = testUIDs(opts.Root)
			d, err := New(opts)
			if err == nil {
				d.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, ErrNotIsolated) {
				t.Errorf("err = %v, want ErrNotIsolated", err)
			}
			for _, w := range append(tc.want, "--insecure-no-sandbox") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			opts.InsecureNoSandbox = true
			d, err = New(opts)
			if err != nil {
				t.Fatalf("with InsecureNoSandbox: %v", err)
			}
			t.Cleanup(func() { d.Close() })
			if d.Sandbox() != SandboxNone {
				t.Errorf("Sandbox() = %q, want %q", d.Sandbox(), SandboxNone)
			}
			h := start(t, d, fakeSpec(t, "insecure"))
			healthy(t, h)
			if env := runtimetest.Env(t, h); env["AGENTHOST_SANDBOX"] != SandboxNone {
				t.Errorf("AGENTHOST_SANDBOX = %q, want %q", env["AGENTHOST_SANDBOX"], SandboxNone)
			}
		})
	}
}
