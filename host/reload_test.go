package host_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
)

func TestReload(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, ".co", "host.yaml")
	writeFile(t, filepath.Join(dir, ".co", "prompt.md"), "first prompt")
	writeFile(t, cfgPath, "summary: first\nsystem_prompt: prompt.md\n")
	var logs testutil.Buffer
	s, err := newIn(t, dir, host.WithReload(true), host.WithLogger(logTo(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httpServer(t, s)
	w := dialWS(t, &testHost{URL: ts})
	w.send(map[string]any{"type": "CONNECT"})
	w.read()

	writeFile(t, cfgPath, "summary: second\nmodel: offline/slow\nsystem_prompt: prompt.md\n")
	testutil.Eventually(t, 10*time.Second, "the new summary and model in /info", func() bool {
		_, m, _ := do(t, "GET", ts+"/info", nil)
		return m["summary"] == "second" && m["model"] == "offline/slow"
	})
	writeFile(t, filepath.Join(dir, ".co", "prompt.md"), "second prompt")
	testutil.Eventually(t, 10*time.Second, "the new system prompt", func() bool { return s.Config().SystemPrompt == "second prompt" })

	// A broken file keeps the running configuration.
	writeFile(t, cfgPath, "summary: third\nbogus: 1\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := logs.WaitFor(ctx, "reload: keeping the running configuration"); err != nil {
		t.Fatalf("the broken file was never refused: %v", err)
	}
	if s.Config().Summary != "second" {
		t.Fatalf("broken reload applied: %q", s.Config().Summary)
	}
	// The WebSocket opened before the reloads still works.
	w.send(map[string]any{"type": "INPUT", "prompt": "hello"})
	if out, _ := w.until("OUTPUT"); out["status"] != "done" {
		t.Fatalf("after reload: %v", out)
	}
}

func httpServer(t testing.TB, s *host.Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

func TestServeBannerAndPortReload(t *testing.T) {
	dir := t.TempDir()
	p1, p2 := testutil.FreePort(t), testutil.FreePort(t)
	cfgPath := filepath.Join(dir, ".co", "host.yaml")
	writeFile(t, cfgPath, fmt.Sprintf("port: %d\nreload: true\n", p1))
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs testutil.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host log:\n%s", logs.String())
		}
	})
	done := make(chan error, 1)
	go func() {
		done <- host.Serve(ctx, factory("offline/demo"), host.WithDir(dir), host.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), host.WithBannerOutput(&out))
	}()
	// A bound on a wait that would otherwise hang the package, not a
	// timing assertion.
	wait, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stop()
	if err := out.WaitFor(wait, "Waiting for tasks…"); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	banner := out.String()
	for _, want := range []string{"Agent 'translator' is now hosted", "Address: 0x", fmt.Sprintf("POST http://localhost:%d/input", p1),
		fmt.Sprintf("ws://localhost:%d/ws", p1), fmt.Sprintf("http://localhost:%d/docs", p1), "P2P Relay:", "disabled", "╭", "╯"} {
		if !strings.Contains(banner, want) {
			t.Fatalf("banner lacks %q:\n%s", want, banner)
		}
	}
	url1 := fmt.Sprintf("http://127.0.0.1:%d", p1)
	if code, m, _ := do(t, "GET", url1+"/health", nil); code != 200 {
		t.Fatalf("health: %d %v", code, m)
	}
	writeFile(t, cfgPath, fmt.Sprintf("port: %d\nreload: true\n", p2))
	if _, err := out.WaitMatch(wait, regexp.MustCompile(`(?s)Waiting for tasks….*Waiting for tasks…`)); err != nil {
		t.Fatalf("no second banner after the port changed: %v:\n%s", err, out.String())
	}
	if second := out.String()[len(banner):]; !strings.Contains(second, fmt.Sprintf(":%d/input", p2)) {
		t.Fatalf("second banner:\n%s", second)
	}
	if code, _, _ := do(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/health", p2), nil); code != 200 {
		t.Fatalf("new port: %d", code)
	}
	// New connections no longer reach the old port (open ones are kept).
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := fresh.Get(url1 + "/health"); err == nil {
		t.Fatal("old port still listening")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReloadEmptyFileKeepsConfig: host.yaml caught between its truncation
// and its write (an editor or a shell writing it in place) reads as empty;
// reloading that would move the agent to every default, the port included,
// until the write lands. The running configuration is kept instead.
func TestReloadEmptyFileKeepsConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, ".co", "host.yaml")
	writeFile(t, cfgPath, "summary: first\nmodel: offline/slow\nport: 8123\n")
	var logs testutil.Buffer
	s, err := newIn(t, dir, host.WithLogger(logTo(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	writeFile(t, cfgPath, "")
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload of an empty file: %v", err)
	}
	if c := s.Config(); c.Summary != "first" || c.Model != "offline/slow" || c.Port != 8123 {
		t.Fatalf("after reloading an empty file: summary %q, model %q, port %d; want the running first, offline/slow, 8123", c.Summary, c.Model, c.Port)
	}
	if !strings.Contains(logs.String(), "is empty") {
		t.Fatalf("the skipped reload was not logged:\n%s", logs.String())
	}
	// The write that follows applies.
	writeFile(t, cfgPath, "summary: second\nport: 8123\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if c := s.Config(); c.Summary != "second" {
		t.Fatalf("after the write: summary %q, want second", c.Summary)
	}
}
