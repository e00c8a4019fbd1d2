package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/relay"
	"github.com/agenthost/agenthost/relay/relayserver"
	"github.com/agenthost/agenthost/trust"
)

func init() {
	Register(Scenario{Name: "relay/round-trip", Description: "a full agent request (client package, offline model, tool call) direct vs through the relay", Run: benchRelayRoundTrip})
	Register(Scenario{Name: "relay/agents", Description: "memory per announced agent on the relay and discovery search latency", Run: benchRelayAgents})
}

// startRelay starts an in-process relay on loopback with limits out of the
// way of a benchmark.
func startRelay() (*relayserver.Server, error) {
	r, err := relayserver.New(relayserver.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ConnRatePerIP: -1, MaxConnsPerIP: -1, ClientFrameRate: -1, AgentFrameRate: -1, SessionRatePerAgent: -1, AnnounceRate: -1})
	if err != nil {
		return nil, err
	}
	if err := r.Start(); err != nil {
		return nil, err
	}
	return r, nil
}

func stopRelay(r *relayserver.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.Shutdown(ctx)
}

// timeInputs runs Input on c, one after another, for d.
func timeInputs(ctx context.Context, c *client.Client, d time.Duration) ([]time.Duration, error) {
	var lat []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		c.SetSession("")
		t0 := time.Now()
		if _, err := c.Input(ctx, "use add on 2 and 3"); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

func benchRelayRoundTrip(ctx context.Context, o Options) ([]Row, error) {
	r, err := startRelay()
	if err != nil {
		return nil, err
	}
	defer stopRelay(r)
	// The host listens on loopback only, so it announces no endpoints and
	// the relayed client cannot take a shortcut.
	h, err := StartHost(demoAgent, host.WithRelayURL(r.URL()))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	deadline := time.Now().Add(10 * time.Second)
	for st, _, _ := h.Server.RelayStatus(); !st.Announced; st, _, _ = h.Server.RelayStatus() {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the agent did not announce on the relay")
		}
		time.Sleep(10 * time.Millisecond)
	}
	direct, err := client.Connect(ctx, h.URL, client.WithoutSigning())
	if err != nil {
		return nil, err
	}
	relayed, err := client.Connect(ctx, h.Server.Address(), client.WithRelay(r.URL()), client.WithoutSigning(), client.WithRelayOnly())
	if err != nil {
		return nil, err
	}
	half := o.Duration / 2
	dl, err := timeInputs(ctx, direct, half)
	if err != nil {
		return nil, fmt.Errorf("direct: %w", err)
	}
	rl, err := timeInputs(ctx, relayed, half)
	if err != nil {
		return nil, fmt.Errorf("through the relay: %w", err)
	}
	const s = "relay/round-trip"
	dp50, dp99 := Percentile(dl, 50), Percentile(dl, 99)
	rp50, rp99 := Percentile(rl, 50), Percentile(rl, 99)
	note := fmt.Sprintf("%d direct, %d relayed requests; each dials, CONNECTs, runs a tool", len(dl), len(rl))
	return []Row{
		{s, "direct p50", Millis(dp50), "ms", note},
		{s, "direct p99", Millis(dp99), "ms", ""},
		{s, "relayed p50", Millis(rp50), "ms", ""},
		{s, "relayed p99", Millis(rp99), "ms", ""},
		{s, "added by the relay p50", Millis(rp50 - dp50), "ms", "relayed p50 - direct p50"},
		{s, "added by the relay p99", Millis(rp99 - dp99), "ms", ""},
	}, nil
}

func benchRelayAgents(ctx context.Context, o Options) ([]Row, error) {
	r, err := startRelay()
	if err != nil {
		return nil, err
	}
	defer stopRelay(r)
	n := o.Sessions
	words := []string{"translate", "weather", "poem", "code review", "sql", "resize images", "recipes", "flights", "calendar", "legal"}
	before := heap()
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	now := time.Now()
	for i := range n {
		id, err := trust.NewIdentity()
		if err != nil {
			return nil, err
		}
		w := words[i%len(words)]
		f, err := relay.BuildAnnounce(id, relay.AnnounceInfo{Summary: "I help with " + w + " and answer questions about " + words[(i/7)%len(words)],
			Profile: &relay.Profile{Alias: fmt.Sprintf("agent-%d", i), Tools: []string{"search", w}}}, r.URL(), now)
		if err != nil {
			return nil, err
		}
		c, _, err := websocket.Dial(ctx, r.URL()+"/ws/announce", nil)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		if err := c.Write(ctx, websocket.MessageText, f); err != nil {
			return nil, err
		}
		if _, _, err := c.Read(ctx); err != nil {
			return nil, err
		}
	}
	perAgent := float64(heap()-before) / float64(n)
	var lat []time.Duration
	for i := range 200 {
		t0 := time.Now()
		res, err := relay.SearchAgents(ctx, nil, r.URL(), words[i%len(words)]+" questions", 20, 0)
		if err != nil {
			return nil, err
		}
		if res.Total == 0 {
			return nil, fmt.Errorf("search %q found nothing", words[i%len(words)])
		}
		lat = append(lat, time.Since(t0))
	}
	const s = "relay/agents"
	return []Row{
		{s, "memory per connected agent", perAgent / 1024, "KiB", fmt.Sprintf("%d agents; both WebSocket ends in this process", n)},
		{s, "search p50", Millis(Percentile(lat, 50)), "ms", "GET /api/agents?q=…, 20 per page"},
		{s, "search p99", Millis(Percentile(lat, 99)), "ms", ""},
	}, nil
}
