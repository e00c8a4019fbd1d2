package host

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/demo"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/internal/testutil/testrelay"
	"github.com/agenthost/agenthost/relay"
	"github.com/agenthost/agenthost/relay/relayserver"
)

func TestEndpointsFor(t *testing.T) {
	ifaces := func() []net.IP {
		return []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("192.168.1.5"), net.ParseIP("fe80::1"),
			net.ParseIP("10.0.0.2"), net.ParseIP("::1"), net.ParseIP("2001:db8::5"), net.ParseIP("203.0.113.7"),
			net.ParseIP("172.17.0.1"), net.ParseIP("100.64.3.4"), net.ParseIP("fd00::7")}
	}
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	cases := []struct {
		name      string
		public    string
		listeners []net.Addr
		want      []string
	}{
		{"public https", "https://agent.example.com/", []net.Addr{tcp("0.0.0.0", 8000)},
			[]string{"https://agent.example.com", "wss://agent.example.com/ws"}},
		{"public with a path", "http://example.com:8080/agents/a", nil,
			[]string{"http://example.com:8080/agents/a", "ws://example.com:8080/agents/a/ws"}},
		// Interfaces: only routable addresses, not a LAN's, a Docker
		// bridge's, CGNAT's or a ULA.
		{"all IPv4 interfaces", "", []net.Addr{tcp("0.0.0.0", 8000)},
			[]string{"http://203.0.113.7:8000", "ws://203.0.113.7:8000/ws"}},
		{"dual stack", "", []net.Addr{tcp("::", 9)},
			[]string{"http://[2001:db8::5]:9", "ws://[2001:db8::5]:9/ws", "http://203.0.113.7:9", "ws://203.0.113.7:9/ws"}},
		// A listener bound to a private address on purpose is announced.
		{"one address", "", []net.Addr{tcp("192.168.1.5", 8000)},
			[]string{"http://192.168.1.5:8000", "ws://192.168.1.5:8000/ws"}},
		{"loopback only", "", []net.Addr{tcp("127.0.0.1", 8000)}, nil},
		{"no listener", "", nil, nil},
	}
	for _, c := range cases {
		if got := endpointsFor(c.public, c.listeners, ifaces); !slices.Equal(got, c.want) {
			t.Errorf("%s: endpointsFor = %q, want %q", c.name, got, c.want)
		}
	}
}

func online(t *testing.T, r *relayserver.Server, addr string) bool {
	ag, err := relay.LookupAgent(context.Background(), nil, r.URL(), addr)
	return err == nil && ag.Online
}

// TestRelayFollowsConfig: relay_url in host.yaml announces the agent
// (profile and LAN endpoints of its listener included); a reload that
// changes relay_url moves it to the new relay, one that empties it stops
// announcing; the banner shows the state.
func TestRelayFollowsConfig(t *testing.T) {
	r1, r2 := testrelay.Start(t, "127.0.0.1:0"), testrelay.Start(t, "127.0.0.1:0")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, ".co", "host.yaml")
	write := func(s string) {
		if err := os.MkdirAll(filepath.Dir(cfgPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgPath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("summary: adds numbers\nrelay_url: " + r1.URL() + "\n")
	s, err := New(context.Background(), func() (*agent.Agent, error) { return demo.New("adder", "offline/demo", "") },
		WithDir(dir), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithBannerOutput(io.Discard),
		WithRelayOptions(relay.WithBackoff([]time.Duration{50 * time.Millisecond}, 0.2, time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-served })

	testutil.Eventually(t, 5*time.Second, "announced on the first relay", func() bool { return online(t, r1, s.Address()) })
	port := ln.Addr().(*net.TCPAddr).Port
	testutil.Eventually(t, 5*time.Second, "LAN endpoints announced", func() bool {
		ag, err := relay.LookupAgent(context.Background(), nil, r1.URL(), s.Address())
		return err == nil && (len(ag.Endpoints) > 0 || len(endpointsFor("", []net.Addr{ln.Addr()}, interfaceAddrs)) == 0)
	})
	ag, _ := relay.LookupAgent(context.Background(), nil, r1.URL(), s.Address())
	for _, ep := range ag.Endpoints {
		if !strings.HasSuffix(strings.TrimSuffix(ep, "/ws"), ":"+strconv.Itoa(port)) || strings.Contains(ep, "127.0.0.1") {
			t.Errorf("announced endpoint %q (port %d)", ep, port)
		}
	}
	if ag.Summary != "adds numbers" || !bytes.Contains(ag.Profile, []byte(`"add"`)) || !bytes.Contains(ag.Profile, []byte(`"alias":"adder"`)) {
		t.Errorf("announced summary %q profile %s", ag.Summary, ag.Profile)
	}
	var banner bytes.Buffer
	s.PrintBanner(&banner, ln.Addr())
	if !strings.Contains(banner.String(), r1.URL()+" (announced)") {
		t.Errorf("banner:\n%s", banner.String())
	}

	write("summary: adds numbers\nrelay_url: " + r2.URL() + "\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "moved to the second relay", func() bool { return online(t, r2, s.Address()) && !online(t, r1, s.Address()) })

	write("summary: adds numbers\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "gone from the relay", func() bool { return !online(t, r2, s.Address()) })
	if _, _, ok := s.RelayStatus(); ok {
		t.Error("RelayStatus reports a relay after relay_url was emptied")
	}
	banner.Reset()
	s.PrintBanner(&banner, ln.Addr())
	if !strings.Contains(banner.String(), "disabled") {
		t.Errorf("banner without relay:\n%s", banner.String())
	}
}
