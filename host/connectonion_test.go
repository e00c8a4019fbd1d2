package host_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/internal/testutil/testrelay"
	"github.com/agenthost/agenthost/relay"
)

// runConnectonion runs testdata/connectonion/roundtrip.js in a fresh
// directory (the client makes its own key) and returns its JSON line.
func runConnectonion(t *testing.T, dir, mode, url, address string) map[string]any {
	t.Helper()
	script, err := filepath.Abs("testdata/connectonion/roundtrip.js")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, mode, url, address)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), testutil.NodePath(dir))
	var m map[string]any
	testutil.RunJSON(t, cmd, &m)
	return m
}

// TestConnectonionClient: the reference TypeScript client (npm
// "connectonion", which signs CONNECT only) completes a two-turn
// conversation with an agenthost agent under trust open and careful,
// directly and through an agenthost relay, with only the URL changed.
func TestConnectonionClient(t *testing.T) {
	dir := testutil.Connectonion.Dir(t)
	for _, level := range []string{"open", "careful"} {
		t.Run(level+"/direct", func(t *testing.T) {
			h := startTrustHost(t, t.TempDir(), host.WithTrust(level))
			m := runConnectonion(t, dir, "direct", h.URL, h.Address())
			checkRoundTrip(t, m)
		})
		t.Run(level+"/relay", func(t *testing.T) {
			r := testrelay.Start(t, "127.0.0.1:0")
			s := startHost(t, "offline/demo", host.WithTrust(level), host.WithRelayURL(r.URL()),
				host.WithRelayOptions(relay.WithBackoff([]time.Duration{50 * time.Millisecond}, 0, time.Second)))
			testutil.Eventually(t, 20*time.Second, "the agent's announce on the relay", func() bool {
				st, _, _ := s.RelayStatus()
				return st.Announced
			})
			m := runConnectonion(t, dir, "relay", r.URL(), s.Address())
			checkRoundTrip(t, m)
		})
	}
}

func checkRoundTrip(t *testing.T, m map[string]any) {
	t.Helper()
	first, _ := m["first"].(string)
	second, _ := m["second"].(string)
	if first == "" || !strings.Contains(second, "John") || m["session"] == nil {
		t.Fatalf("round trip: %v", m)
	}
}
