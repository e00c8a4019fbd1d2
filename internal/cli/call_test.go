package cli

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/demo"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/internal/testutil/testrelay"
)

// TestCallAndSearchThroughRelay: `agenthost agents search` finds an agent
// that has no listener, and `agenthost call 0x…` reaches it through the
// relay, signed with a key created on first use.
func TestCallAndSearchThroughRelay(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := testrelay.Start(t, "127.0.0.1:0")
	dir := t.TempDir()
	s, err := host.New(context.Background(), func() (*agent.Agent, error) { return demo.New("calculator", "offline/demo", "") },
		host.WithDir(dir), host.WithConfigFile(""), host.WithLogger(quiet), host.WithRelayURL(r.URL()),
		host.WithSummary("A calculator that adds numbers"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the agent's announce on the relay", func() bool {
		st, _, _ := s.RelayStatus()
		return st.Announced
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	code, out, errb := hostCmd(ctx, dir, "", "agents", "search", "adds", "numbers", "--relay", r.URL())
	if code != 0 || !strings.Contains(out.String(), s.Address()) || !strings.Contains(out.String(), "online") ||
		!strings.Contains(out.String(), "calculator") {
		t.Fatalf("agents search: %d\n%s\n%s", code, out, errb)
	}
	keys := filepath.Join(t.TempDir(), "me")
	code, out, errb = hostCmd(ctx, dir, "", "call", s.Address(), "use add on 2 and 3", "--relay", r.URL(), "--keys", keys)
	if code != 0 || !strings.Contains(out.String(), "5") || !strings.Contains(errb.String(), "through the relay") ||
		!strings.Contains(errb.String(), "→ add") || !strings.Contains(errb.String(), "created your identity 0x") {
		t.Fatalf("call through the relay: %d\nstdout: %s\nstderr: %s", code, out, errb)
	}
	sid := regexp.MustCompile(`session: (\S+)`).FindStringSubmatch(errb.String())
	if sid == nil {
		t.Fatalf("no session id: %s", errb)
	}
	code, out, errb = hostCmd(ctx, dir, "", "call", "--resume", "--session", sid[1], s.Address(), "--relay", r.URL(), "--keys", keys)
	if code != 0 || !strings.Contains(out.String(), "5") {
		t.Fatalf("call --resume: %d\nstdout: %s\nstderr: %s", code, out, errb)
	}
	if code, _, _ = hostCmd(ctx, dir, "", "call", "--resume", s.Address(), "--relay", r.URL()); code != 2 {
		t.Fatalf("--resume without --session: %d", code)
	}
	code, _, errb = hostCmd(ctx, dir, "", "call", "0x"+strings.Repeat("00", 32), "hi", "--relay", r.URL(), "--unsigned")
	if code != 1 || !strings.Contains(errb.String(), "not known to the relay") {
		t.Fatalf("unknown agent: %d %s", code, errb)
	}
	code, _, errb = hostCmd(ctx, dir, "", "agents", "list")
	if code != 2 {
		t.Fatalf("agents list: %d %s", code, errb)
	}
}

// TestCallNoRelayNamesTheFlag: calling an agent by address with no relay
// says which flag (or variable) names one, not a Go option.
func TestCallNoRelayNamesTheFlag(t *testing.T) {
	code, _, errb := hostCmd(context.Background(), t.TempDir(), "", "call", "0x"+strings.Repeat("ab", 32), "hi")
	if code != 1 || !strings.Contains(errb.String(), "--relay URL") || strings.Contains(errb.String(), "WithRelay") {
		t.Fatalf("exit %d: %s", code, errb)
	}
}
