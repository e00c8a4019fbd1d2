package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/egress"
	"github.com/agenthost/agenthost/internal/testutil"
)

func TestMain(m *testing.M) {
	RunInitIfAsked()
	os.Exit(m.Run())
}

// needBwrap skips without bubblewrap, except under CI=true, where a
// missing sandbox is a failure.
func needBwrap(t testing.TB) {
	t.Helper()
	if err := Probe(context.Background()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no sandbox: %v", err)
		}
		t.Skipf("no sandbox here: %v", err)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// shortDir is a temporary directory with a short path, for unix sockets.
func shortDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "sbx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// proxy serves an egress proxy with the given allow list on a unix socket
// and returns the socket's path.
func proxy(t testing.TB, allow string) string {
	t.Helper()
	sock := filepath.Join(shortDir(t), "egress.sock")
	ln, err := egress.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	s := egress.Serve(ln, egress.NewProxy(&egress.Dialer{Policy: egress.MustParse(allow)}, nil))
	t.Cleanup(func() { s.Close() })
	return sock
}

// canary is an HTTP server on the host's 127.0.0.1 answering "canary".
func canary(t testing.TB) (*httptest.Server, string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "canary-reached") }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return srv, port
}

func newManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	needBwrap(t)
	if cfg.Workspace == "" {
		cfg.Workspace = t.TempDir()
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// run runs script in session and returns its output and result.
func run(t testing.TB, m *Manager, session, script string) (string, Result, error) {
	t.Helper()
	var out testutil.Buffer
	res, err := m.Run(ctxT(t, 30*time.Second), session, Command{Script: script, Output: &out})
	return out.String(), res, err
}

// mustRun runs script and fails unless it exits 0.
func mustRun(t testing.TB, m *Manager, session, script string) string {
	t.Helper()
	out, res, err := run(t, m, session, script)
	if err != nil || res.Code != 0 || res.Signal != 0 {
		t.Fatalf("%s: %+v %v\n%s", script, res, err, out)
	}
	return out
}

// TestAdversarial tries, from inside a sandboxed command, what a hostile
// tool would; every attempt must fail while echo still works.
func TestAdversarial(t *testing.T) {
	outside := t.TempDir()
	canaryFile := filepath.Join(outside, "secret.txt")
	if err := os.WriteFile(canaryFile, []byte("host-secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(outside, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "runtime.db"), []byte("database"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AGENTHOST_CONTROL_TOKEN", "control-token-canary")
	t.Setenv("OPENAI_API_KEY", "model-key-canary")
	t.Setenv("ORG_SECRET", "org-secret-value")
	_, port := canary(t)
	if err := os.MkdirAll(filepath.Join(outside, "ws"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, Config{
		Workspace:   filepath.Join(outside, "ws"),
		ProxySocket: proxy(t, ""),
		ToolEnv:     Pass(os.Getenv, []string{"ORG_SECRET"}),
	})

	if out := mustRun(t, m, "s", "echo ok"); out != "ok\n" {
		t.Fatalf("control command: %q", out)
	}
	pid := strconv.Itoa(os.Getpid())
	attempts := []struct {
		name, script string
	}{
		{"read a host file by absolute path", "cat " + canaryFile},
		{"list the test's temp dir", "ls " + outside},
		{"read the runtime's database", "cat " + filepath.Join(dataDir, "runtime.db")},
		{"list /root", "ls /root"},
		{"signal the test process", "kill -0 " + pid},
		{"see the test process in /proc", "test -e /proc/" + pid + "/cmdline && grep -q -- " + strconv.Quote(os.Args[0]) + " /proc/" + pid + "/cmdline"},
		{"connect to a host loopback port", "exec 3<>/dev/tcp/127.0.0.1/" + port},
		{"curl a host loopback port directly", "curl -sSf --max-time 5 --noproxy '*' http://127.0.0.1:" + port + "/"},
		{"curl a host loopback port through the proxy", "curl -sSf --max-time 5 --noproxy '' http://127.0.0.1:" + port + "/"},
		{"curl cloud metadata through the proxy", "curl -sSf --max-time 5 http://169.254.169.254/latest/meta-data/"},
		{"read the control token", `test -n "$AGENTHOST_CONTROL_TOKEN"`},
		{"read the model key", `test -n "$OPENAI_API_KEY"`},
		{"find secrets in any environ", "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -E 'canary'"},
		{"write to /", "touch /x"},
		{"write to /etc", "touch /etc/x"},
		{"write to /usr", "touch /usr/x"},
		{"write to /run", "touch /run/x"},
		{"write to /dev", "touch /dev/x"},
		{"create /home", "mkdir /home"},
		{"replace the init", "cp /bin/true /run/agenthost/init"},
		{"unshare a user namespace", "unshare -U true"},
		{"unshare a mount namespace", "unshare -m true"},
		{"mount a tmpfs", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m"},
		{"chroot", "chroot / true"},
		{"become root", "test $(id -u) = 0"},
		{"open the init's control socket", "readlink /proc/2/fd/3 || exec 5<>/proc/2/fd/3"},
		{"read the init's environment", "cat /proc/2/environ"},
		{"trace the init", "cat /proc/2/maps"},
		{"have capabilities", "grep -q '^CapEff:.*[1-9a-f]' /proc/self/status"},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			out, res, err := run(t, m, "s", a.script)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			t.Logf("exit %d, signal %d:\n%s", res.Code, res.Signal, out)
			if res.Code == 0 && res.Signal == 0 {
				t.Errorf("succeeded:\n%s", out)
			}
			for _, secret := range []string{"host-secret", "database", "control-token-canary", "model-key-canary", "canary-reached"} {
				if strings.Contains(out, secret) {
					t.Errorf("output shows %q:\n%s", secret, out)
				}
			}
		})
	}

	t.Run("proc shows only the sandbox", func(t *testing.T) {
		out := mustRun(t, m, "s", `for p in /proc/[0-9]*; do printf '%s ' "${p#/proc/}"; tr '\0' ' ' < $p/cmdline; echo; done`)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) > 10 {
			t.Errorf("%d processes visible:\n%s", len(lines), out)
		}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) > 1 && f[1] == os.Args[0] {
				t.Errorf("the test process is visible: %s", l)
			}
		}
	})
	t.Run("environment", func(t *testing.T) {
		out := mustRun(t, m, "s", "env | sort")
		for _, want := range []string{"HOME=/workspace", "ORG_SECRET=org-secret-value", "HTTPS_PROXY=http://127.0.0.1:3128", "TMPDIR=/tmp", "LANG=C.UTF-8"} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("env lacks %s:\n%s", want, out)
			}
		}
		if strings.Contains(out, "AGENTHOST_") || strings.Contains(out, "OPENAI") {
			t.Errorf("env leaks:\n%s", out)
		}
	})
	t.Run("writable places", func(t *testing.T) {
		mustRun(t, m, "s", "echo w > /workspace/w && echo t > /tmp/t && echo s > /dev/shm/s && echo n > /dev/null && cat /workspace/w /tmp/t /dev/shm/s")
		if b, err := os.ReadFile(filepath.Join(outside, "ws", "w")); err != nil || string(b) != "w\n" {
			t.Errorf("workspace file on the host: %q %v", b, err)
		}
	})
	t.Run("limits", func(t *testing.T) {
		// The init's threads (pid 2) carry the filter as well as the command.
		out := mustRun(t, m, "s", "ulimit -n; ulimit -c; cat /proc/self/oom_score_adj; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; grep -h '^Seccomp:' /proc/2/task/*/status | sort | uniq -c | awk '{print $2, $3, ($1 > 1)}'")
		want := "1024\n0\n1000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp: 2 1\n"
		if out != want {
			t.Errorf("limits:\n%s\nwant\n%s", out, want)
		}
	})
}

func TestProxyAllowed(t *testing.T) {
	_, port := canary(t)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "tls-canary") }))
	defer tlsSrv.Close()
	_, tlsPort, _ := net.SplitHostPort(tlsSrv.Listener.Addr().String())
	m := newManager(t, Config{ProxySocket: proxy(t, "127.0.0.1")})
	// --noproxy '' overrides NO_PROXY, which keeps 127.0.0.1 local to
	// the sandbox; the request goes through HTTP_PROXY to the host.
	if out := mustRun(t, m, "s", "curl -sSf --max-time 10 --noproxy '' http://127.0.0.1:"+port+"/"); out != "canary-reached" {
		t.Errorf("http: %q", out)
	}
	if out := mustRun(t, m, "s", "curl -sSfk --max-time 10 --noproxy '' https://127.0.0.1:"+tlsPort+"/"); out != "tls-canary" {
		t.Errorf("https (CONNECT): %q", out)
	}
	// Local servers are reached directly, without the proxy.
	if out := mustRun(t, m, "s", `python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1 &
for i in $(seq 100); do curl -sf -o /dev/null http://localhost:8765/ && break; sleep 0.05; done
curl -sSf -o /dev/null -w '%{http_code}' http://localhost:8765/`); out != "200" {
		t.Errorf("local server: %q", out)
	}
	// Without a proxy socket there is no way out at all.
	m2 := newManager(t, Config{})
	out, res, err := run(t, m2, "s", "curl -sSf --max-time 5 --noproxy '' --proxy http://127.0.0.1:3128 http://127.0.0.1:"+port+"/")
	if err != nil || res.Code == 0 {
		t.Errorf("no proxy: %+v %v %s", res, err, out)
	}
}

func TestSessions(t *testing.T) {
	m := newManager(t, Config{})
	// A background process outlives its command, in its session only.
	mustRun(t, m, "a", "sleep 300 >/dev/null 2>&1 & echo $! > /tmp/bg")
	if out := mustRun(t, m, "a", `kill -0 $(cat /tmp/bg) && ps -eo args | grep -c '^sleep 300'`); out != "1\n" {
		t.Errorf("background process gone in its session: %q", out)
	}
	out, res, err := run(t, m, "b", `test -e /tmp/bg; echo tmp=$?; ps -eo args | grep -c '^sleep 300' || true`)
	if err != nil || out != "tmp=1\n0\n" {
		t.Errorf("other session sees the first: %q %+v %v", out, res, err)
	}
	if got := len(m.Sessions()); got != 2 {
		t.Errorf("%d sandboxes, want 2", got)
	}
	// The workspace is shared by the sessions.
	mustRun(t, m, "a", "echo shared > /workspace/f")
	if out := mustRun(t, m, "b", "cat f"); out != "shared\n" {
		t.Errorf("workspace not shared: %q", out)
	}
	m.CloseSession("a")
	if out := mustRun(t, m, "a", "test -e /tmp/bg; echo $?"); out != "1\n" {
		t.Errorf("closed session's /tmp survived: %q", out)
	}
}

// TestTimeoutKillsGroup: a command whose context ends is killed with its
// whole process group. The context ends once the command has started (its
// output says so), not after a fixed time: on a loaded machine starting the
// sandbox alone outran a 300 ms timeout.
func TestTimeoutKillsGroup(t *testing.T) {
	m := newManager(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testutil.Buffer
	go func() {
		if out.WaitFor(ctx, "start\n") == nil {
			cancel()
		}
	}()
	res, err := m.Run(ctx, "s", Command{Script: "echo start; sleep 100 & sleep 100", Output: &out})
	if err != nil || res.Signal != syscall.SIGKILL || out.String() != "start\n" {
		t.Fatalf("%+v %v %q", res, err, out.String())
	}
	if out := mustRun(t, m, "s", "ps -eo args | grep -c '^sleep 100' || true"); out != "0\n" {
		t.Errorf("children survived the kill: %q", out)
	}
}

func TestExitStatus(t *testing.T) {
	m := newManager(t, Config{})
	tests := []struct {
		script string
		code   int
		signal syscall.Signal
		out    string
	}{
		{"echo out; echo err >&2; exit 3", 3, 0, "out\nerr\n"},
		{"kill -TERM $$", 0, syscall.SIGTERM, ""},
		{"cat; echo stdin-empty", 0, 0, "stdin-empty\n"},
	}
	for _, tc := range tests {
		out, res, err := run(t, m, "s", tc.script)
		if err != nil || res.Code != tc.code || res.Signal != tc.signal || out != tc.out {
			t.Errorf("%s: %+v %v %q", tc.script, res, err, out)
		}
	}
	var out testutil.Buffer
	_, err := m.Run(ctxT(t, 10*time.Second), "s", Command{Script: "true", Dir: "/workspace/missing", Output: &out})
	if !errors.Is(err, ErrStart) {
		t.Errorf("missing dir: %v", err)
	}
	if _, err := m.Run(ctxT(t, 10*time.Second), "s", Command{Script: strings.Repeat("x", MaxScript+1)}); err == nil {
		t.Error("an over-long script was accepted")
	}
}

// TestOutputHeld: a background process that keeps the output open does not
// hold the command past a short grace.
func TestOutputHeld(t *testing.T) {
	m := newManager(t, Config{})
	out, res, err := run(t, m, "s", "echo fg; sleep 30 &")
	if err != nil || !res.OutputHeld || out != "fg\n" {
		t.Fatalf("%+v %v %q", res, err, out)
	}
}

func TestInitDies(t *testing.T) {
	m := newManager(t, Config{})
	mustRun(t, m, "s", "sleep 300 >/dev/null 2>&1 & echo $! > /tmp/bg")
	_, _, err := run(t, m, "s", "kill -9 $PPID; sleep 30")
	if !errors.Is(err, ErrDied) {
		t.Fatalf("err = %v, want ErrDied", err)
	}
	if !strings.Contains(err.Error(), "next command starts a fresh sandbox") {
		t.Errorf("message: %v", err)
	}
	out, res, err := run(t, m, "s", "echo ok; test -e /tmp/bg; echo $?")
	if err != nil || out != "ok\n1\n" || !strings.Contains(res.Note, "died or was killed") {
		t.Fatalf("after the death: %q %+v %v", out, res, err)
	}
	if _, res, _ := run(t, m, "s", "true"); res.Note != "" {
		t.Errorf("note repeated: %q", res.Note)
	}
}

func TestIdleTimeout(t *testing.T) {
	clock := testutil.NewClock(time.Unix(1_000_000, 0))
	m := newManager(t, Config{IdleTimeout: time.Hour, Now: clock.Now})
	mustRun(t, m, "a", "touch /tmp/a")
	mustRun(t, m, "b", "touch /tmp/b")
	clock.Advance(59 * time.Minute)
	mustRun(t, m, "b", "true") // b was used recently
	if n := m.Sweep(); n != 0 {
		t.Fatalf("swept %d before the timeout", n)
	}
	clock.Advance(time.Minute)
	if n := m.Sweep(); n != 1 {
		t.Fatalf("swept %d, want a", n)
	}
	if got := m.Sessions(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("live sessions %v", got)
	}
	out, res, err := run(t, m, "a", "test -e /tmp/a; echo $?")
	if err != nil || out != "1\n" || !strings.Contains(res.Note, "without a command") {
		t.Errorf("after the sweep: %q %+v %v", out, res, err)
	}
	if out := mustRun(t, m, "b", "test -e /tmp/b; echo $?"); out != "0\n" {
		t.Errorf("b lost its sandbox: %q", out)
	}
	// A running command keeps its sandbox however long it takes.
	mustRun(t, m, "b", "mkfifo /workspace/fifo")
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(ctxT(t, 30*time.Second), "b", Command{Script: "echo go; read x < /workspace/fifo", Output: writerFunc(func(p []byte) (int, error) {
			select {
			case <-started:
			default:
				close(started)
			}
			return len(p), nil
		})})
		done <- err
	}()
	<-started
	clock.Advance(2 * time.Hour)
	if n := m.Sweep(); n != 1 { // a, idle again
		t.Errorf("swept %d, want 1", n)
	}
	if got := m.Sessions(); len(got) != 1 || got[0] != "b" {
		t.Errorf("busy b swept: live sessions %v", got)
	}
	mustRun(t, m, "c", "echo x > /workspace/fifo")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestFileSizeLimit(t *testing.T) {
	ws := t.TempDir()
	m := newManager(t, Config{Workspace: ws, DiskLimit: 1 << 20})
	out, res, err := run(t, m, "s", "head -c 2000000 /dev/zero > big")
	if err != nil || res.Code == 0 {
		t.Fatalf("%q %+v %v", out, res, err)
	}
	fi, err := os.Stat(filepath.Join(ws, "big"))
	if err != nil || fi.Size() > 1<<20 {
		t.Errorf("file: %v %v", fi, err)
	}
	// /tmp is no larger than the limit either.
	if out := mustRun(t, m, "s", "df -B1 --output=size /tmp | tail -1"); strings.TrimSpace(out) != "1048576" {
		t.Errorf("/tmp size: %q", out)
	}
}

func TestProbe(t *testing.T) {
	needBwrap(t)
	if err := Probe(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	err := Probe(ctxT(t, 10*time.Second))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "apt-get install bubblewrap") {
		t.Errorf("without bwrap: %v", err)
	}
	if _, err := New(Config{Workspace: t.TempDir()}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("New without bwrap: %v", err)
	}
}

func TestParseToolEnv(t *testing.T) {
	got, err := ParseToolEnv(" GITHUB_TOKEN, NPM_TOKEN ,,")
	if err != nil || strings.Join(got, ",") != "GITHUB_TOKEN,NPM_TOKEN" {
		t.Errorf("%v %v", got, err)
	}
	for _, bad := range []string{"AGENTHOST_CONTROL_TOKEN", "agenthost_x", "A-B", "1X", "A=B"} {
		if _, err := ParseToolEnv(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	env := Pass(func(k string) string { return map[string]string{"A": "1", "C": ""}[k] }, []string{"A", "B", "C"})
	if strings.Join(env, " ") != "A=1" {
		t.Errorf("Pass: %v", env)
	}
}

// pidsCgroup creates a pids cgroup (v1) capped at max and moves the
// session's sandbox into it: a safety net so a fork bomb cannot take this
// shared machine's pids while the test shows that the sandbox contains and
// cleans up after it (in production the driver's cgroup is the cap).
func pidsCgroup(t *testing.T, m *Manager, session string, max int) string {
	t.Helper()
	root := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		t.Skipf("no cgroup v1 pids hierarchy to cap the fork bomb with: %v", err)
	}
	dir := filepath.Join(root, fmt.Sprintf("agenthost-sandbox-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a pids cgroup: %v", err)
	}
	t.Cleanup(func() {
		m.Close()
		// The sandbox's processes are gone once Close returns, but the
		// kernel may take a moment to drop them from the cgroup.
		deadline := time.Now().Add(10 * time.Second)
		for os.Remove(dir) != nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(max)), 0); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	b := m.boxes[session]
	m.mu.Unlock()
	var walk func(pid int)
	walk = func(pid int) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatalf("moving %d: %v", pid, err)
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, c := range strings.Fields(string(b)) {
				n, _ := strconv.Atoi(c)
				walk(n)
			}
		}
	}
	walk(b.cmd.Process.Pid)
	return dir
}

func TestForkBomb(t *testing.T) {
	m := newManager(t, Config{})
	mustRun(t, m, "s", "echo ok")
	cg := pidsCgroup(t, m, "s", 400)
	// In the foreground: the command is killed at its timeout with all
	// its processes.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := m.Run(ctx, "s", Command{Script: "f(){ f | f; }; f"})
	if err != nil || res.Signal != syscall.SIGKILL {
		t.Fatalf("%+v %v", res, err)
	}
	// The sandbox survives, cleaned up, and so does this process.
	out := mustRun(t, m, "s", "echo ok; ps -e --no-headers | wc -l")
	lines := strings.Fields(out)
	if len(lines) != 2 || lines[0] != "ok" {
		t.Fatalf("after the bomb: %q", out)
	}
	if n, _ := strconv.Atoi(lines[1]); n > 6 {
		t.Errorf("%d processes left in the sandbox", n)
	}
	// In the background it outlives its command, as any background
	// process does, inside the sandbox; closing the session's sandbox
	// (abort of all, idle, runtime exit) ends it.
	if _, err := m.Run(ctxT(t, 10*time.Second), "s", Command{Script: ":(){ :|:& };:"}); err != nil {
		t.Fatal(err)
	}
	m.CloseSession("s")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(cg, "pids.current"))
		if strings.TrimSpace(string(b)) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s processes left after closing the sandbox", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out := mustRun(t, m, "s", "echo ok"); out != "ok\n" {
		t.Fatalf("next command: %q", out)
	}
}

// BenchmarkRun compares a plain `bash -c true` with the same command in a
// warm sandbox: the difference is the sandbox's cost per command.
func BenchmarkRun(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("bash", "-c", "true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sandbox", func(b *testing.B) {
		m := newManager(b, Config{})
		mustRun(b, m, "s", "true")
		ctx := context.Background()
		for b.Loop() {
			res, err := m.Run(ctx, "s", Command{Script: "true"})
			if err != nil || res.Code != 0 {
				b.Fatal(res, err)
			}
		}
	})
	b.Run("sandbox-start", func(b *testing.B) {
		m := newManager(b, Config{})
		ctx := context.Background()
		for i := 0; b.Loop(); i++ {
			s := strconv.Itoa(i)
			if _, err := m.Run(ctx, s, Command{Script: "true"}); err != nil {
				b.Fatal(err)
			}
			m.CloseSession(s)
		}
	})
}

// BenchmarkProbe is what a runtime's start pays to check the sandbox.
func BenchmarkProbe(b *testing.B) {
	needBwrap(b)
	for b.Loop() {
		if err := Probe(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPrivate: a session's sandbox shows its own private folder and none
// of the others' — also not after the session tried to move the private
// directory out from under the cover and restarted its sandbox — and a
// symlink where the private directory should be fails closed.
func TestPrivate(t *testing.T) {
	ws := t.TempDir()
	m := newManager(t, Config{Workspace: ws, Private: "uploads/sessions"})
	for _, f := range []string{"uploads/sessions/b/secret.txt", "uploads/shared.txt"} {
		p := filepath.Join(ws, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("canary-"+filepath.Base(f)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out := mustRun(t, m, "a", "echo mine > /workspace/uploads/sessions/a/note.txt; ls /workspace/uploads/sessions; cat /workspace/uploads/shared.txt"); out != "a\ncanary-shared.txt" {
		t.Errorf("session a sees: %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "uploads/sessions/a/note.txt")); err != nil || string(b) != "mine\n" {
		t.Errorf("a's own folder is not the host's: %q %v", b, err)
	}
	attempts := []string{
		"cat /workspace/uploads/sessions/b/secret.txt",
		"mv /workspace/uploads /workspace/moved",
		"mv /workspace/uploads/sessions /workspace/uploads/x",
		"touch /workspace/uploads/new.txt",
		"ln -s /workspace/uploads/sessions/b /workspace/uploads/sessions/a/b && cat /workspace/uploads/sessions/a/b/secret.txt",
	}
	for _, a := range attempts {
		if out, res, _ := run(t, m, "a", a); res.Code == 0 {
			t.Errorf("%s succeeded in session a: %q", a, out)
		}
	}
	mustRun(t, m, "a", "rm -rf /workspace/uploads/sessions/b")
	if _, err := os.Stat(filepath.Join(ws, "uploads/sessions/b/secret.txt")); err != nil {
		t.Errorf("session a removed b's file: %v", err)
	}
	m.CloseSession("a")
	if out := mustRun(t, m, "a", "cat /workspace/moved/sessions/b/secret.txt /workspace/uploads/x/b/secret.txt 2>/dev/null; ls /workspace/uploads/sessions"); strings.Contains(out, "canary") || out != "a\n" {
		t.Errorf("after a restart, session a sees: %q", out)
	}
	if out := mustRun(t, m, "b", "cat /workspace/uploads/sessions/b/secret.txt"); out != "canary-secret.txt" {
		t.Errorf("session b's own file: %q", out)
	}

	// A symlink on the way refuses the sandbox rather than show the wrong
	// thing.
	ws2 := t.TempDir()
	if err := os.Symlink(t.TempDir(), filepath.Join(ws2, "uploads")); err != nil {
		t.Fatal(err)
	}
	m2 := newManager(t, Config{Workspace: ws2, Private: "uploads/sessions"})
	if _, _, err := run(t, m2, "a", "true"); err == nil {
		t.Error("a sandbox started with uploads/ a symlink")
	}
}
