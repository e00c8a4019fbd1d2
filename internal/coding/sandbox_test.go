package coding

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.RunInitIfAsked() // the sandbox's init is this test binary
	os.Exit(m.Run())
}

// withSandbox marks Options that want a sandbox made for their workspace
// (see toolboxWith).
var withSandbox = new(sandbox.Manager)

// needSandbox skips the test without bubblewrap, except under CI=true
// where that is a failure.
func needSandbox(t testing.TB) {
	t.Helper()
	if err := sandbox.Probe(context.Background()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no sandbox: %v", err)
		}
		t.Skipf("no sandbox: %v", err)
	}
}

// newSandbox starts a sandbox manager for root.
func newSandbox(t testing.TB, root string) *sandbox.Manager {
	return newSandboxCfg(t, sandbox.Config{Workspace: root})
}

func newSandboxCfg(t testing.TB, cfg sandbox.Config) *sandbox.Manager {
	t.Helper()
	needSandbox(t)
	m, err := sandbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// forEachMode runs test without a sandbox and in one.
func forEachMode(t *testing.T, test func(t *testing.T, opts Options)) {
	t.Run("host", func(t *testing.T) { test(t, Options{}) })
	t.Run("sandbox", func(t *testing.T) { test(t, Options{Sandbox: withSandbox}) })
}

func TestBashSandboxed(t *testing.T) {
	tools, root := toolboxWith(t, Options{Sandbox: withSandbox})
	tests := []struct {
		name    string
		args    string
		want    []string
		notWant []string
	}{
		{"workspace at /workspace", `{"command":"pwd; echo $HOME"}`, []string{"/workspace\n/workspace\n[exit code 0]"}, []string{root}},
		{"workdir inside", `{"command":"pwd","workdir":"src/pkg"}`, []string{"/workspace/src/pkg\n"}, nil},
		{"host path invisible", `{"command":"ls ` + root + `"}`, []string{"No such file", "[exit code 2]"}, nil},
		{"pager defaults", `{"command":"echo $PAGER $GIT_TERMINAL_PROMPT $NO_COLOR"}`, []string{"cat 0 1\n"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := call(t, tools, "bash", tc.args)
			checkResult(t, out, err, tc.want, tc.notWant, "")
		})
	}
}

// TestBashSessions: a session's background process is there for its next
// command, and another session has its own sandbox.
func TestBashSessions(t *testing.T) {
	tools, _ := toolboxWith(t, Options{Sandbox: withSandbox})
	bash := tools["bash"]
	a, b := WithSession(context.Background(), "a"), WithSession(context.Background(), "b")
	if SessionFrom(a) != "a" || SessionFrom(context.Background()) != "" {
		t.Fatal("session in context")
	}
	if out, err := bash.Call(a, []byte(`{"command":"sleep 300 >/dev/null 2>&1 & echo $! > /tmp/pid"}`)); err != nil {
		t.Fatal(out, err)
	}
	out, err := bash.Call(a, []byte(`{"command":"kill -0 $(cat /tmp/pid) && echo alive"}`))
	if err != nil || !strings.Contains(out, "alive") {
		t.Fatalf("session a: %q %v", out, err)
	}
	out, err = bash.Call(b, []byte(`{"command":"cat /tmp/pid"}`))
	if err != nil || !strings.Contains(out, "No such file") {
		t.Fatalf("session b sees a's /tmp: %q %v", out, err)
	}
}

// TestBashSandboxDies: the call under which the init dies says so, and the
// next one runs in a fresh sandbox with a note.
func TestBashSandboxDies(t *testing.T) {
	tools, _ := toolboxWith(t, Options{Sandbox: withSandbox})
	_, err := call(t, tools, "bash", `{"command":"kill -9 $PPID; sleep 20"}`)
	if !errors.Is(err, sandbox.ErrDied) || !strings.Contains(err.Error(), "next command starts a fresh sandbox") {
		t.Fatalf("%v", err)
	}
	out, err := call(t, tools, "bash", `{"command":"echo ok"}`)
	if err != nil || !strings.HasPrefix(out, "[note: the session's previous sandbox had ended") || !strings.Contains(out, "ok\n[exit code 0]") {
		t.Fatalf("%q %v", out, err)
	}
}

// TestDiskLimit: a command that grows the workspace past its cap is
// killed, and write and edit are refused until files are deleted.
func TestDiskLimit(t *testing.T) {
	forEachMode(t, func(t *testing.T, opts Options) {
		opts.DiskLimit = 1 << 20
		opts.DiskCheckInterval = 20 * time.Millisecond
		w, _ := newWorkspace(t)
		if opts.Sandbox == withSandbox {
			opts.Sandbox = newSandboxCfg(t, sandbox.Config{Workspace: w.Root(), DiskLimit: opts.DiskLimit})
		}
		testDiskLimit(t, w.Root(), opts)
	})
}

func testDiskLimit(t *testing.T, root string, opts Options) {
	tools, err := Tools(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]func(string) (string, error){}
	for _, tl := range tools {
		byName[tl.Spec().Name] = func(args string) (string, error) { return tl.Call(context.Background(), []byte(args)) }
	}
	start := time.Now()
	out, err := byName["bash"](`{"command":"for i in 1 2 3; do head -c 600000 /dev/zero > fill$i; done; sleep 60","timeout":30000}`)
	if err != nil || !strings.Contains(out, "[killed: the workspace exceeds its disk limit of 1048576 bytes (1.0 MiB)]") {
		t.Fatalf("%q %v", out, err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("killed after %s", d)
	}
	if _, err := byName["write"](`{"path":"new.txt","content":"x"}`); err == nil || !strings.Contains(err.Error(), "disk limit") {
		t.Fatalf("write while over: %v", err)
	}
	if _, err := byName["edit"](`{"path":"README.md","old_string":"","new_string":"x"}`); err == nil || !strings.Contains(err.Error(), "disk limit") {
		t.Fatalf("edit while over: %v", err)
	}
	// Deleting is allowed (bash is not refused) and lifts the refusal.
	if out, err := byName["bash"](`{"command":"rm fill1 fill2 fill3"}`); err != nil || strings.Contains(out, "killed") {
		t.Fatalf("cleanup: %q %v", out, err)
	}
	if _, err := byName["write"](`{"path":"new.txt","content":"x"}`); err != nil {
		t.Fatalf("write after cleanup: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "new.txt")); err != nil || string(b) != "x" {
		t.Fatalf("written: %q %v", b, err)
	}
}

// TestWorkspacePathSpelling: the file tools take /workspace/... as a
// spelling of the workspace root, in every mode.
func TestWorkspacePathSpelling(t *testing.T) {
	w, _ := newWorkspace(t)
	for p, want := range map[string]string{"/workspace": ".", "/workspace/README.md": "README.md", "/workspace/src/../README.md": "README.md"} {
		got, err := w.Resolve(p)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	for _, p := range []string{"/workspace/../etc/passwd", "/workspacex/a", "/etc/passwd"} {
		if _, err := w.Resolve(p); err == nil {
			t.Errorf("Resolve(%q) accepted", p)
		}
	}
	tools, _ := toolbox(t)
	out, err := call(t, tools, "read", `{"path":"/workspace/README.md"}`)
	if err != nil || !strings.Contains(out, "1\t") {
		t.Errorf("read /workspace/README.md: %q %v", out, err)
	}
	if !strings.Contains(SystemPrompt(WorkspacePath), "/workspace") {
		t.Error("the system prompt does not name /workspace")
	}
}
