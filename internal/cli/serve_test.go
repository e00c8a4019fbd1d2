package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
)

func hostCmd(ctx context.Context, dir, stdin string, args ...string) (int, *testutil.Buffer, *testutil.Buffer) {
	var out, errb testutil.Buffer
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Dir: dir}
	return Run(ctx, env, args), &out, &errb
}

var portRE = regexp.MustCompile(`POST http://localhost:(\d+)/input`)

func TestInitServeCall(t *testing.T) {
	dir := t.TempDir()
	code, out, errb := hostCmd(context.Background(), dir, "", "init")
	if code != 0 || !strings.Contains(out.String(), "wrote ") || !strings.Contains(out.String(), "created identity 0x") {
		t.Fatalf("init: %d %s %s", code, out, errb)
	}
	// The template is a valid config with the documented defaults.
	cfg, err := host.LoadConfig(host.WithDir(dir))
	if err != nil {
		t.Fatalf("init's host.yaml does not load: %v", err)
	}
	if cfg.Port != 8000 || cfg.Trust != "careful" || cfg.Workers != 8 || cfg.MaxFileSizeMB != 10 || cfg.Name != "assistant" {
		t.Fatalf("template config: %+v", cfg)
	}
	code, out, _ = hostCmd(context.Background(), dir, "", "init")
	if code != 0 || !strings.Contains(out.String(), "kept") || !strings.Contains(out.String(), "using identity") {
		t.Fatalf("second init: %s", out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var sout, serr *testutil.Buffer
	ready := make(chan struct{})
	go func() {
		var out, errb testutil.Buffer
		sout, serr = &out, &errb
		close(ready)
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Dir: dir}
		done <- Run(ctx, env, []string{"serve", "--port", "0", "--trust", "open"})
	}()
	<-ready
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	m, err := sout.WaitMatch(wctx, portRE)
	wcancel()
	if err != nil {
		t.Fatalf("no banner: %v: %s %s", err, sout, serr)
	}
	port := m[1]
	for _, want := range []string{"Agent 'assistant' is now hosted", "/docs to talk to the agent", "Waiting for tasks…"} {
		if !strings.Contains(sout.String(), want) {
			t.Fatalf("serve output lacks %q:\n%s", want, sout)
		}
	}
	url := "http://localhost:" + port
	code, out, errb = hostCmd(ctx, dir, "", "call", url, "use add on 2 and 3")
	if code != 0 || !strings.Contains(out.String(), "5") || !strings.Contains(errb.String(), "→ add") || !strings.Contains(errb.String(), "← add completed") {
		t.Fatalf("call: %d\nstdout: %s\nstderr: %s", code, out, errb)
	}
	sid := regexp.MustCompile(`session: (\S+)`).FindStringSubmatch(errb.String())
	if sid == nil {
		t.Fatalf("no session id: %s", errb)
	}
	hostCmd(ctx, dir, "", "call", "localhost:"+port, "My name is John", "--session", sid[1])
	code, out, errb = hostCmd(ctx, dir, "", "call", "--session", sid[1], "ws://localhost:"+port+"/ws", "What is my name?")
	if code != 0 || !strings.Contains(out.String(), "John") {
		t.Fatalf("continued call: %d %s %s", code, out, errb)
	}
	code, _, errb = hostCmd(ctx, dir, "", "call", url)
	if code != 2 {
		t.Fatalf("call without prompt: %d %s", code, errb)
	}
	cancel()
	if c := <-done; c != 0 && c != 130 {
		t.Fatalf("serve exit %d: %s", c, serr)
	}
	if _, err := os.Stat(filepath.Join(dir, ".co", "host.db")); err != nil {
		t.Fatalf("no session database: %v", err)
	}
}

func TestServeBadConfig(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".co"), 0o700)
	os.WriteFile(filepath.Join(dir, ".co", "host.yaml"), []byte("port: 8000\nworkerz: 2\n"), 0o600)
	code, _, errb := hostCmd(context.Background(), dir, "", "serve")
	if code != 1 || !strings.Contains(errb.String(), `host.yaml:2: key "workerz": unknown key`) {
		t.Fatalf("bad config: %d %s", code, errb)
	}
}

// TestServeLoadsDotEnv: serve loads .env from its directory before it reads
// its configuration, without overriding variables already set (the host
// library itself never touches the environment).
func TestServeLoadsDotEnv(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".env"), []byte("AGENTHOST_TEST_DOTENV=loaded\nAGENTHOST_TEST_DOTENV_SET=from-file\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, ".co"), 0o700)
	os.WriteFile(filepath.Join(dir, ".co", "host.yaml"), []byte("workerz: 2\n"), 0o600) // serve stops after loading .env
	t.Setenv("AGENTHOST_TEST_DOTENV_SET", "from-env")
	os.Unsetenv("AGENTHOST_TEST_DOTENV")
	t.Cleanup(func() { os.Unsetenv("AGENTHOST_TEST_DOTENV") })
	if code, _, errb := hostCmd(context.Background(), dir, "", "serve"); code != 1 || !strings.Contains(errb.String(), "workerz") {
		t.Fatalf("serve: %d %s", code, errb)
	}
	if got := os.Getenv("AGENTHOST_TEST_DOTENV"); got != "loaded" {
		t.Errorf("AGENTHOST_TEST_DOTENV = %q, want loaded from .env", got)
	}
	if got := os.Getenv("AGENTHOST_TEST_DOTENV_SET"); got != "from-env" {
		t.Errorf("AGENTHOST_TEST_DOTENV_SET = %q: .env overrode the environment", got)
	}
	os.WriteFile(filepath.Join(dir, ".env"), []byte("FOO=\"unterminated\n"), 0o600)
	if code, _, errb := hostCmd(context.Background(), dir, "", "serve"); code != 1 || !strings.Contains(errb.String(), ".env") {
		t.Errorf("bad .env: %d %s", code, errb)
	}
}
