package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/internal/testutil/testrelay"
	"github.com/agenthost/agenthost/relay"
)

// TestAgentReachableOnlyThroughRelay: the agent has no listener at all,
// only its outbound announce connection; a client given its address
// reaches it through the relay with streaming and a tool call, continues
// the session, and the agent's gate sees the client's own signature.
func TestAgentReachableOnlyThroughRelay(t *testing.T) {
	r := testrelay.Start(t, "127.0.0.1:0")
	var g *sigGate
	s := newAgent(t, "offline/demo", host.WithRelayURL(r.URL()), host.WithSummary("adds numbers and remembers names"),
		host.WithApproval("danger"),
		host.WithGateBuilder(func(env host.GateEnv) (host.Gate, error) {
			g = newSigGate(t, env.Identity.Address(), "", false)
			return g, nil
		}))
	testutil.Eventually(t, 5*time.Second, "the agent announced", announced(s))

	ctx := ctxFor(t, 30*time.Second)
	ag, err := relay.LookupAgent(ctx, nil, r.URL(), s.Address())
	if err != nil || !ag.Online || len(ag.Endpoints) != 0 || ag.Summary != "adds numbers and remembers names" {
		t.Fatalf("relay's view of the agent: %+v, %v", ag, err)
	}
	id := newID(t)
	c, err := client.Connect(ctx, s.Address(), client.WithRelay(r.URL()), client.WithKeys(id))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Relayed() {
		t.Fatal("an agent without endpoints is reached directly?")
	}
	var rec recorder
	res, err := c.Input(ctx, "use add on 2 and 3", client.OnEvent(rec.on))
	if err != nil {
		t.Fatal(err)
	}
	if call := rec.find(client.EventToolCall); call == nil || call.Name != "add" {
		t.Fatalf("no tool_call through the relay: %v", rec.types())
	}
	if rec.streamed() == "" || !strings.Contains(res.Result, "5") {
		t.Fatalf("streamed %q, result %q", rec.streamed(), res.Result)
	}
	// Session continuation and approvals through the relay.
	if _, err := c.Input(ctx, "My name is John"); err != nil {
		t.Fatal(err)
	}
	res2, err := c.Input(ctx, "What is my name?")
	if err != nil || res2.SessionID != res.SessionID || !strings.Contains(res2.Result, "John") {
		t.Fatalf("continued through the relay: %+v, %v (first %s)", res2, err, res.SessionID)
	}
	res3, err := c.Input(ctx, `use danger on "launch"`, client.OnApproval(func(context.Context, client.Approval) (client.Decision, error) {
		return client.Decision{Approved: true}, nil
	}))
	if err != nil || !strings.Contains(res3.Result, "did launch") {
		t.Fatalf("approval through the relay: %+v, %v", res3, err)
	}
	info, err := c.Session(ctx, res.SessionID)
	if err != nil || info.Status != "done" || info.SessionID != res.SessionID {
		t.Fatalf("Session through the relay: %+v, %v", info, err)
	}
	if _, err := c.Sessions(ctx); !errors.Is(err, client.ErrUnsupported) {
		t.Fatalf("Sessions through the relay: %v", err)
	}
	for _, a := range g.signers() {
		if a != id.Address() {
			t.Fatalf("the gate saw %s, want the client's own address %s", a, id.Address())
		}
	}
	if len(g.signers()) == 0 {
		t.Fatal("the gate saw no signed request")
	}
	// Another identity cannot read the session through the relay either.
	other, err := client.Connect(ctx, s.Address(), client.WithRelay(r.URL()), client.WithKeys(newID(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Session(ctx, res.SessionID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("another caller's session through the relay: %v", err)
	}
	// Naming it does not continue it either.
	other.SetSession(res.SessionID)
	got, err := other.Input(ctx, "What is my name?")
	if err != nil || strings.Contains(got.Result, "John") || got.SessionID == res.SessionID {
		t.Fatalf("another caller naming the session through the relay: %+v, %v", got, err)
	}
	// and its own new session continues.
	if _, err := other.Input(ctx, "My name is Eve"); err != nil {
		t.Fatal(err)
	}
	if got2, err := other.Input(ctx, "What is my name?"); err != nil || got2.SessionID != got.SessionID || !strings.Contains(got2.Result, "Eve") {
		t.Fatalf("the other caller's own session: %+v, %v (want session %s)", got2, err, got.SessionID)
	}
}

// TestDirectEndpointFirst: an agent that announces a reachable endpoint is
// used directly; one whose announced endpoint answers with another
// address is reached through the relay instead.
func TestDirectEndpointFirst(t *testing.T) {
	r := testrelay.Start(t, "127.0.0.1:0")
	// The agent's URL is known only once it listens: serve first, then
	// point public_url at it by reload-free construction order.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	s := newAgent(t, "offline/demo", host.WithRelayURL(r.URL()), host.WithPublicURL(public))
	go s.Serve(context.Background(), ln)
	testutil.Eventually(t, 5*time.Second, "the agent announced", announced(s))
	ctx := ctxFor(t, 20*time.Second)
	ag, err := relay.LookupAgent(ctx, nil, r.URL(), s.Address())
	if err != nil || len(ag.Endpoints) != 2 || ag.Endpoints[0] != public || ag.Endpoints[1] != "ws://"+ln.Addr().String()+"/ws" {
		t.Fatalf("announced endpoints: %+v, %v", ag, err)
	}
	c, err := client.Connect(ctx, s.Address(), client.WithRelay(r.URL()), client.WithKeys(newID(t)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Relayed() || c.Info() == nil || c.Info().Address != s.Address() {
		t.Fatalf("want a direct connection: relayed %v info %+v", c.Relayed(), c.Info())
	}
	if res, err := c.Input(ctx, "use add on 2 and 2"); err != nil || !strings.Contains(res.Result, "4") {
		t.Fatalf("direct: %+v, %v", res, err)
	}

	// An impostor: this agent announces the first agent's URL as its own.
	imp := newAgent(t, "offline/demo", host.WithRelayURL(r.URL()), host.WithPublicURL(public))
	testutil.Eventually(t, 5*time.Second, "the second agent announced", announced(imp))
	c, err = client.Connect(ctx, imp.Address(), client.WithRelay(r.URL()), client.WithKeys(newID(t)))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Relayed() {
		t.Fatal("the client used an endpoint whose /info reports another address")
	}
	if res, err := c.Input(ctx, "use add on 3 and 3"); err != nil || !strings.Contains(res.Result, "6") {
		t.Fatalf("relayed: %+v, %v", res, err)
	}
}

// TestRelayRestart: a client mid-run when the relay stops gets
// ErrConnectionLost promptly; once the relay is back the agent has
// re-announced within seconds and new requests succeed.
func TestRelayRestart(t *testing.T) {
	r := testrelay.Start(t, "127.0.0.1:0")
	addr := r.Addr().String()
	t.Setenv("AGENTHOST_OFFLINE_DELAY", "150ms")
	s := newAgent(t, "offline/slow", host.WithRelayURL(r.URL()))
	testutil.Eventually(t, 5*time.Second, "the agent announced", announced(s))
	ctx := ctxFor(t, 60*time.Second)
	c, err := client.Connect(ctx, s.Address(), client.WithRelay(r.URL()), client.WithKeys(newID(t)))
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var once bool
		_, err := c.Input(ctx, "Tell me a long story about the sea and the mountains please", client.OnEvent(func(e client.Event) {
			if e.Type == client.EventStream && !once {
				once = true
				close(first)
			}
		}))
		done <- err
	}()
	select {
	case <-first:
	case err := <-done:
		t.Fatalf("run ended before streaming: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no STREAM event")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	r.Shutdown(sctx)
	cancel()
	stopped := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, client.ErrConnectionLost) {
			t.Fatalf("mid-run error %v, want ErrConnectionLost", err)
		}
		var e *client.Error
		if !errors.As(err, &e) || e.SessionID == "" {
			t.Fatalf("the error does not name the session: %v", err)
		}
		t.Logf("mid-run client saw after %s: %v", time.Since(stopped).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("the client hangs after the relay stopped")
	}

	r2 := testrelay.Start(t, addr)
	restarted := time.Now()
	testutil.Eventually(t, 5*time.Second, "the agent re-announced", func() bool {
		ag, err := relay.LookupAgent(ctx, nil, r2.URL(), s.Address())
		return err == nil && ag.Online
	})
	t.Logf("re-announced %s after the relay came back", time.Since(restarted).Round(time.Millisecond))
	// The interrupted client picks its run up where it left off.
	var rec recorder
	res, err := c.Resume(ctx, client.OnEvent(rec.on))
	if err != nil || res.Result == "" || res.SessionID != c.SessionID() {
		t.Fatalf("Resume after the restart: %+v, %v", res, err)
	}
	if rec.find(client.EventStream) == nil && rec.find(client.EventOutput) == nil {
		t.Fatalf("Resume replayed nothing: %v", rec.types())
	}
	c2, err := client.Connect(ctx, s.Address(), client.WithRelay(r2.URL()), client.WithKeys(newID(t)))
	if err != nil {
		t.Fatal(err)
	}
	res, err = c2.Input(ctx, "use add on 20 and 22")
	if err != nil || !strings.Contains(res.Result, "42") {
		t.Fatalf("after the restart: %+v, %v", res, err)
	}
	if d := time.Since(restarted); d > 8*time.Second {
		t.Fatalf("a request after the restart took %s to succeed", d)
	}
}

// TestAgentOffline: an address the relay knows nothing of is ErrNotFound.
func TestAgentOffline(t *testing.T) {
	r := testrelay.Start(t, "127.0.0.1:0")
	ctx := ctxFor(t, 10*time.Second)
	_, err := client.Connect(ctx, newID(t).Address(), client.WithRelay(r.URL()), client.WithoutSigning())
	if !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown agent: %v", err)
	}
}
