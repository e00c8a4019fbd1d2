package client_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/host"
)

func TestStreamAndToolCall(t *testing.T) {
	s := newAgent(t, "offline/demo")
	url := serveAgent(t, s)
	ctx := ctxFor(t, 20*time.Second)
	c, err := client.Connect(ctx, url, client.WithKeys(newID(t)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Address() != s.Address() || c.Relayed() || c.Info().Name != "helper" {
		t.Fatalf("Connect: address %s relayed %v info %+v", c.Address(), c.Relayed(), c.Info())
	}
	var rec recorder
	res, err := c.Input(ctx, "use add on 2 and 3", client.OnEvent(rec.on))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Result, "5") || res.SessionID == "" {
		t.Fatalf("result %+v", res)
	}
	call := rec.find(client.EventToolCall)
	if call == nil || call.Name != "add" || !strings.Contains(string(call.Args), "2") {
		t.Fatalf("no add tool_call in %v", rec.types())
	}
	if tr := rec.find(client.EventToolResult); tr == nil || tr.Status != "completed" || tr.Result != "5" {
		t.Fatalf("tool_result %+v", tr)
	}
	if got := rec.streamed(); got == "" || !strings.Contains(res.Result, strings.TrimSpace(got)) {
		t.Fatalf("streamed %q, result %q", got, res.Result)
	}
	if c.SessionID() != res.SessionID {
		t.Fatalf("client session %q, result %q", c.SessionID(), res.SessionID)
	}
}

func TestStreamIterator(t *testing.T) {
	s := newAgent(t, "offline/demo")
	ctx := ctxFor(t, 20*time.Second)
	c, err := client.Connect(ctx, serveAgent(t, s), client.WithoutSigning())
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var last client.Event
	for e, err := range c.Stream(ctx, "use add on 4 and 5") {
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, e.Type)
		last = e
	}
	if last.Type != client.EventOutput || !strings.Contains(last.Result, "9") || !slices.Contains(types, client.EventToolCall) {
		t.Fatalf("events %v, last %+v", types, last)
	}
}

func TestSessionContinuation(t *testing.T) {
	s := newAgent(t, "offline/demo")
	url := serveAgent(t, s)
	ctx := ctxFor(t, 20*time.Second)
	id := newID(t)
	c, err := client.Connect(ctx, url, client.WithKeys(id))
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Input(ctx, "My name is John")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Input(ctx, "What is my name?")
	if err != nil {
		t.Fatal(err)
	}
	if res.SessionID != first.SessionID || !strings.Contains(res.Result, "John") {
		t.Fatalf("continued: %+v (first session %s)", res, first.SessionID)
	}
	// A new client continues the session by id.
	c2, err := client.Connect(ctx, url, client.WithKeys(id), client.WithSession(first.SessionID))
	if err != nil {
		t.Fatal(err)
	}
	res, err = c2.Input(ctx, "What is my name?")
	if err != nil || res.SessionID != first.SessionID || !strings.Contains(res.Result, "John") {
		t.Fatalf("WithSession: %+v, %v", res, err)
	}
	info, err := c2.Session(ctx, first.SessionID)
	if err != nil || info.Status != "done" || info.Prompt != "What is my name?" {
		t.Fatalf("Session: %+v, %v", info, err)
	}
	if _, err := c2.Session(ctx, "no-such-session-0000"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
}

func TestAskUserCallback(t *testing.T) {
	s := newAgent(t, "offline/demo")
	ctx := ctxFor(t, 20*time.Second)
	c, err := client.Connect(ctx, serveAgent(t, s), client.WithKeys(newID(t)))
	if err != nil {
		t.Fatal(err)
	}
	var asked client.Question
	res, err := c.Input(ctx, `use ask "favourite colour?"`, client.OnQuestion(func(_ context.Context, q client.Question) ([]string, error) {
		asked = q
		return []string{"blue"}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(asked.Text, "favourite colour?") || !slices.Equal(asked.Options, []string{"red", "blue"}) {
		t.Fatalf("question %+v", asked)
	}
	if !strings.Contains(res.Result, "the user said blue") {
		t.Fatalf("result %q", res.Result)
	}
}

func TestApprovalCallback(t *testing.T) {
	s := newAgent(t, "offline/demo", host.WithApproval("danger"))
	ctx := ctxFor(t, 20*time.Second)
	var asked []client.Approval
	c, err := client.Connect(ctx, serveAgent(t, s), client.WithKeys(newID(t)),
		client.WithApprovalHandler(func(_ context.Context, a client.Approval) (client.Decision, error) {
			asked = append(asked, a)
			return client.Decision{Approved: strings.Contains(string(a.Arguments), "launch")}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Input(ctx, `use danger on "launch"`)
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || asked[0].Tool != "danger" || !strings.Contains(res.Result, "did launch") {
		t.Fatalf("approved: asked %+v, result %q", asked, res.Result)
	}
	var rec recorder
	res, err = c.Input(ctx, `use danger on "explode"`, client.OnEvent(rec.on))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Result, "did explode") || rec.find(client.EventApproval) == nil {
		t.Fatalf("refused: result %q, events %v", res.Result, rec.types())
	}
}

func TestOnboardingWithInviteCode(t *testing.T) {
	var g *sigGate
	s := newAgent(t, "offline/demo", host.WithGateBuilder(func(env host.GateEnv) (host.Gate, error) {
		g = newSigGate(t, env.Identity.Address(), "WELCOME-42", false)
		return g, nil
	}))
	url := serveAgent(t, s)
	ctx := ctxFor(t, 20*time.Second)
	id := newID(t)

	c, err := client.Connect(ctx, url, client.WithKeys(id))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Input(ctx, "hello"); !errors.Is(err, client.ErrOnboardRequired) {
		t.Fatalf("without an invite code: %v", err)
	}
	c, _ = client.Connect(ctx, url, client.WithKeys(id), client.WithInviteCode("wrong"))
	if _, err := c.Input(ctx, "hello"); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("wrong invite code: %v", err)
	}
	c, _ = client.Connect(ctx, url, client.WithKeys(id), client.WithInviteCode("WELCOME-42"))
	res, err := c.Input(ctx, "use add on 1 and 1")
	if err != nil || !strings.Contains(res.Result, "2") {
		t.Fatalf("onboarded: %+v, %v", res, err)
	}
	// Now a contact: no invite code needed, and the sessions are its own.
	c, _ = client.Connect(ctx, url, client.WithKeys(id))
	if _, err := c.Input(ctx, "hello again"); err != nil {
		t.Fatalf("contact: %v", err)
	}
	list, err := c.Sessions(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("Sessions: %+v, %v", list, err)
	}
	for _, a := range g.signers() {
		if a != id.Address() {
			t.Fatalf("the gate saw signer %s, want %s", a, id.Address())
		}
	}
	// Unsigned callers are refused by this gate.
	c, _ = client.Connect(ctx, url, client.WithoutSigning())
	if _, err := c.Input(ctx, "hello"); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("unsigned: %v", err)
	}
	if _, err := c.Sessions(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("unsigned Sessions: %v", err)
	}
}

func TestSessionsAreTheSignersOwn(t *testing.T) {
	s := newAgent(t, "offline/demo", host.WithGateBuilder(func(env host.GateEnv) (host.Gate, error) {
		return newSigGate(t, env.Identity.Address(), "", true), nil
	}))
	url := serveAgent(t, s)
	ctx := ctxFor(t, 20*time.Second)
	alice, _ := client.Connect(ctx, url, client.WithKeys(newID(t)))
	bob, _ := client.Connect(ctx, url, client.WithKeys(newID(t)))
	res, err := alice.Input(ctx, "My name is Alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Session(ctx, res.SessionID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("bob reading alice's session: %v", err)
	}
	// Bob naming alice's session gets a new one, never hers.
	bob.SetSession(res.SessionID)
	got, err := bob.Input(ctx, "What is my name?")
	if err != nil || got.SessionID == res.SessionID || strings.Contains(got.Result, "Alice") {
		t.Fatalf("bob continuing alice's session: %+v, %v", got, err)
	}
	if list, err := alice.Sessions(ctx); err != nil || len(list) != 1 || list[0].SessionID != res.SessionID {
		t.Fatalf("alice's sessions: %+v, %v", list, err)
	}
}

func TestStrictRefusesUnsigned(t *testing.T) {
	s := newAgent(t, "offline/demo", host.WithTrust("strict"))
	ctx := ctxFor(t, 20*time.Second)
	c, err := client.Connect(ctx, serveAgent(t, s), client.WithoutSigning())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Input(ctx, "hello")
	var e *client.Error
	if !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &e) || e.Code != "unauthorized" {
		t.Fatalf("strict, unsigned: %v", err)
	}
}

func TestConnectErrors(t *testing.T) {
	ctx := ctxFor(t, 10*time.Second)
	if _, err := client.Connect(ctx, "http://127.0.0.1:1", client.WithoutSigning()); !errors.Is(err, client.ErrOffline) {
		t.Fatalf("nothing listening: %v", err)
	}
	t.Setenv(client.EnvRelayURL, "")
	if _, err := client.Connect(ctx, "0x"+strings.Repeat("ab", 32), client.WithoutSigning()); !errors.Is(err, client.ErrNoRelay) {
		t.Fatalf("address without a relay: %v", err)
	}
	if _, err := client.Connect(ctx, "0x123", client.WithoutSigning(), client.WithRelay("ws://127.0.0.1:1")); err == nil {
		t.Fatal("malformed address accepted")
	}
}

func TestDefaultKeysAreCreatedOnce(t *testing.T) {
	s := newAgent(t, "offline/demo")
	url := serveAgent(t, s)
	ctx := ctxFor(t, 10*time.Second)
	dir := t.TempDir()
	c1, err := client.Connect(ctx, url, client.WithKeyDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := client.Connect(ctx, url, client.WithKeyDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if c1.Identity() == nil || c1.Identity().Address() != c2.Identity().Address() {
		t.Fatalf("keys differ: %v %v", c1.Identity(), c2.Identity())
	}
}

// TestResumeAfterDisconnect: a client whose connection ends mid-run
// resumes: the events it missed are replayed, then the run's answer.
func TestResumeAfterDisconnect(t *testing.T) {
	t.Setenv("AGENTHOST_OFFLINE_DELAY", "100ms")
	s := newAgent(t, "offline/slow")
	ctx := ctxFor(t, 30*time.Second)
	c, err := client.Connect(ctx, serveAgent(t, s), client.WithKeys(newID(t)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var first []client.Event
	_, err = c.Input(runCtx, "Tell me a long story about the sea and the mountains please", client.OnEvent(func(e client.Event) {
		first = append(first, e)
		if e.Type == client.EventStream {
			cancel() // the connection goes mid-stream
		}
	}))
	if !errors.Is(err, context.Canceled) || c.SessionID() == "" {
		t.Fatalf("cancelled run: %v (session %q)", err, c.SessionID())
	}
	var rest recorder
	res, err := c.Resume(ctx, client.OnEvent(rest.on))
	if err != nil || !strings.Contains(res.Result, "offline demo model") || res.SessionID != c.SessionID() {
		t.Fatalf("Resume: %+v, %v", res, err)
	}
	seen := map[int64]bool{}
	for _, e := range first {
		seen[e.ID] = true
	}
	for _, e := range rest.events {
		if e.ID != 0 && seen[e.ID] {
			t.Fatalf("event %d replayed twice", e.ID)
		}
	}
	if got := rest.streamed(); got == "" {
		t.Fatalf("nothing streamed after resuming: %v", rest.types())
	}
	// Resuming a finished run gives its stored answer.
	again, err := c.Resume(ctx)
	if err != nil || again.Result != res.Result {
		t.Fatalf("Resume of a finished run: %+v, %v", again, err)
	}
}

// A client that saw none of a session resumes its latest turn: a finished
// session gives its last answer, not its first, and is not reported
// interrupted; a running one is followed to the end of its current turn.
func TestResumeFreshClientLatestTurn(t *testing.T) {
	s := newAgent(t, "offline/demo")
	ctx := ctxFor(t, 30*time.Second)
	url := serveAgent(t, s)
	id := newID(t)
	c, err := client.Connect(ctx, url, client.WithKeys(id))
	if err != nil {
		t.Fatal(err)
	}
	var last *client.Result
	for _, p := range []string{"My name is John", "hello there", "What is my name?"} {
		if last, err = c.Input(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	fresh, err := client.Connect(ctx, url, client.WithKeys(id), client.WithSession(c.SessionID()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := fresh.Resume(ctx)
	if err != nil || res.Result != last.Result || !strings.Contains(res.Result, "John") {
		t.Fatalf("Resume by a fresh client = %+v, %v; want the latest answer %q", res, err, last.Result)
	}

	// A turn still running: the fresh client follows it to its end.
	t.Setenv("AGENTHOST_OFFLINE_DELAY", "50ms")
	slow := newAgent(t, "offline/slow")
	surl := serveAgent(t, slow)
	c, err = client.Connect(ctx, surl, client.WithKeys(id))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Input(ctx, "My name is Ada"); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	_, err = c.Input(runCtx, "What is my name? Tell me a long story about it please", client.OnEvent(func(e client.Event) {
		if e.Type == client.EventStream {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	fresh, err = client.Connect(ctx, surl, client.WithKeys(id), client.WithSession(c.SessionID()))
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	res, err = fresh.Resume(ctx, client.OnEvent(rec.on))
	if err != nil || !strings.Contains(res.Result, "Ada") {
		t.Fatalf("Resume of a running turn = %+v, %v", res, err)
	}
	if got := rec.streamed(); !strings.HasPrefix(res.Result, got) || got == "" {
		t.Fatalf("streamed %q is not the current turn's answer %q", got, res.Result)
	}
}
