package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil/testagent"
	"github.com/agenthost/agenthost/relay"
	"github.com/agenthost/agenthost/trust"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newAgent builds a host (not listening) with its data in a temp dir.
func newAgent(t testing.TB, model string, opts ...host.Option) *host.Server {
	t.Helper()
	dir := t.TempDir()
	base := []host.Option{host.WithDir(dir), host.WithCoDir(dir + "/.co"), host.WithLogger(quietLogger()),
		host.WithConfigFile(""), host.WithPingInterval(time.Hour), host.WithBannerOutput(io.Discard),
		host.WithRelayOptions(relay.WithBackoff([]time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}, 0.2, time.Second))}
	s, err := host.New(context.Background(), func() (*agent.Agent, error) {
		return agent.New("helper", agent.WithModel(model), agent.WithTools(testagent.Tools()...))
	}, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// serveAgent serves a host on an httptest server and returns its URL.
func serveAgent(t testing.TB, s *host.Server) string {
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL
}

func announced(s *host.Server) func() bool {
	return func() bool {
		st, _, ok := s.RelayStatus()
		return ok && st.Announced
	}
}

func newID(t testing.TB) *trust.Identity {
	t.Helper()
	id, err := trust.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// recorder collects a run's events.
type recorder struct {
	mu     sync.Mutex
	events []client.Event
}

func (r *recorder) on(e client.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type)
	}
	return out
}

func (r *recorder) streamed() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.events {
		if e.Type == client.EventStream {
			b.WriteString(e.Chunk)
		}
	}
	return b.String()
}

func (r *recorder) find(typ string) *client.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.events {
		if r.events[i].Type == typ {
			e := r.events[i]
			return &e
		}
	}
	return nil
}

// sigGate is a small gate for tests that verifies signatures with the
// trust package: signed callers are admitted as themselves once they are
// contacts; strangers must onboard with the invite code; unsigned callers
// are anonymous when anon is set.
type sigGate struct {
	v      *trust.Verifier
	invite string
	anon   bool

	mu       sync.Mutex
	contacts map[string]bool
	seen     []string // signers admitted, in order
}

func newSigGate(t testing.TB, self, invite string, anon bool) *sigGate {
	v, err := trust.NewVerifier(trust.VerifierConfig{Address: self, RequireRecipient: true})
	if err != nil {
		t.Fatal(err)
	}
	return &sigGate{v: v, invite: invite, anon: anon, contacts: map[string]bool{}}
}

func (g *sigGate) verify(ctx context.Context, r *host.Request) (*trust.Verified, error) {
	if r.Header != nil && r.Header.Get(trust.HeaderSignature) != "" {
		return g.v.VerifyHeaders(ctx, r.Header, r.Method, r.Path)
	}
	raw, _ := json.Marshal(map[string]any{"payload": r.Payload, "from": r.From, "signature": r.Signature})
	return g.v.Verify(ctx, raw)
}

func (g *sigGate) Admit(ctx context.Context, r *host.Request) (host.Caller, error) {
	if !r.Signed() {
		if g.anon {
			return host.Caller{Level: "stranger"}, nil
		}
		return host.Caller{}, fmt.Errorf("%w: signature required", host.ErrUnauthorized)
	}
	m, err := g.verify(ctx, r)
	if err != nil {
		return host.Caller{}, fmt.Errorf("%w: %v", host.ErrUnauthorized, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, m.From)
	if g.invite != "" && !g.contacts[m.From] {
		return host.Caller{Address: m.From, Level: "stranger"}, &host.OnboardRequired{Identity: m.From, Methods: []string{"invite_code"}}
	}
	return host.Caller{Address: m.From, Level: "contact"}, nil
}

func (g *sigGate) Onboard(ctx context.Context, r *host.Request) (host.Caller, string, error) {
	m, err := g.verify(ctx, r)
	if err != nil {
		return host.Caller{}, "", fmt.Errorf("%w: %v", host.ErrUnauthorized, err)
	}
	var p struct {
		InviteCode string `json:"invite_code"`
	}
	if err := m.Decode(&p); err != nil || p.InviteCode != g.invite {
		return host.Caller{}, "", fmt.Errorf("%w: invalid invite code", host.ErrForbidden)
	}
	g.mu.Lock()
	g.contacts[m.From] = true
	g.mu.Unlock()
	return host.Caller{Address: m.From, Level: "contact"}, "welcome", nil
}

func (g *sigGate) signers() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.seen...)
}

var _ = errors.Is
