package cli

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
)

// TestCallSessionsAndInterrupt: `agenthost call` prints the session id as
// soon as it exists, so a call stopped with Ctrl-C says how to resume it,
// and `agenthost sessions URL` lists the caller's own sessions.
func TestCallSessionsAndInterrupt(t *testing.T) {
	t.Setenv("AGENTHOST_OFFLINE_DELAY", "100ms")
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := host.New(context.Background(), func() (*agent.Agent, error) { return agent.New("slow", agent.WithModel("offline/slow")) },
		host.WithDir(dir), host.WithLogger(quiet), host.WithTrust("careful"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	keys := filepath.Join(t.TempDir(), "me")

	// Ctrl-C during the stream.
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb lockedBuf
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Dir: dir}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, env, []string{"call", ts.URL, "Tell me a long story about the sea please", "--keys", keys})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errb.String(), "session: ") || out.String() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no session id before the answer ended: %q %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code == 0 {
		t.Fatalf("an interrupted call exited 0")
	}
	sid := regexp.MustCompile(`session: (\S+)`).FindStringSubmatch(errb.String())[1]
	if !strings.Contains(errb.String(), "agenthost call --resume --session "+sid) {
		t.Fatalf("no resume hint after Ctrl-C: %s", errb.String())
	}

	// The caller's sessions, signed.
	lctx, lcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer lcancel()
	code, lout, lerr := hostCmd(lctx, dir, "", "sessions", ts.URL, "--keys", keys)
	if code != 0 || !strings.Contains(lout.String(), sid) || !strings.Contains(lout.String(), "Tell me a long story") {
		t.Fatalf("sessions: %d\n%s\n%s", code, lout, lerr)
	}
	other := filepath.Join(t.TempDir(), "other")
	code, lout, lerr = hostCmd(lctx, dir, "", "sessions", ts.URL, "--keys", other)
	if code != 0 || strings.Contains(lout.String(), sid) || !strings.Contains(lerr.String(), "no sessions of yours") {
		t.Fatalf("another caller sees: %d\n%s\n%s", code, lout, lerr)
	}
}
