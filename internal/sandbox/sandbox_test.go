package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/egress"
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

// syncBuf is a goroutine-safe buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run runs script in session and returns its output and result.
func run(t testing.TB, m *Manager, session, script string) (string, Result, error) {
	t.Helper()
	var out syncBuf
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
		out := mustRun(t, m, "s", "ulimit -n; ulimit -c; cat /proc/self/oom_score_adj; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status")
		want := "1024\n0\n1000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
		if out != want {
			t.Errorf("limits:\n%s\nwant\n%s", out, want)
		}
	})
}
