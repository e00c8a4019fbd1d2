package policy

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/trust"
)

func mustList(t *testing.T, entries ...string) *List {
	t.Helper()
	l, err := NewList("test", entries)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustGate(t *testing.T, cfg GateConfig) *Gate {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g, err := NewGate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var (
	stranger = "0x" + strings.Repeat("11", 32)
	friend   = "0x" + strings.Repeat("22", 32)
	banned   = "0x" + strings.Repeat("33", 32)
	vip      = "0x" + strings.Repeat("44", 32)
)

func TestDecide(t *testing.T) {
	ctx := context.Background()
	strict, _ := Preset(PresetStrict)
	careful := Default()
	open, _ := Preset(PresetOpen)
	onboarding := &Policy{Name: PresetCustom, Allow: []string{"whitelisted", "contact"}, Deny: []string{"blocked"},
		Onboard: Onboarding{InviteCodes: []string{"OpenOnion", "BETA2024"}, Payment: 10}, Default: ActionDeny}

	for _, tc := range []struct {
		name    string
		policy  *Policy
		caller  Caller
		want    Outcome
		level   Level
		sigReq  bool
		promote bool
	}{
		{"open anonymous", open, Caller{}, OutcomeAllow, LevelAnonymous, false, false},
		{"open blacklisted with a valid signature", open, Caller{Address: banned}, OutcomeDeny, LevelBlocked, false, false},
		{"careful anonymous", careful, Caller{}, OutcomeAllow, LevelAnonymous, false, false},
		{"careful stranger", careful, Caller{Address: stranger}, OutcomeAllow, LevelStranger, false, false},
		{"careful blacklisted", careful, Caller{Address: "0X" + strings.ToUpper(banned[2:])}, OutcomeDeny, "", false, false},
		{"careful blocked in store", careful, Caller{Address: "0x" + strings.Repeat("55", 32)}, OutcomeDeny, LevelBlocked, false, false},
		{"strict anonymous", strict, Caller{}, OutcomeDeny, LevelAnonymous, true, false},
		{"strict stranger", strict, Caller{Address: stranger}, OutcomeDeny, LevelStranger, false, false},
		{"strict contact", strict, Caller{Address: friend}, OutcomeAllow, LevelContact, false, false},
		{"strict whitelisted by list", strict, Caller{Address: vip}, OutcomeAllow, LevelWhitelisted, false, false},
		{"strict whitelisted and blacklisted", strict, Caller{Address: banned}, OutcomeDeny, LevelBlocked, false, false},
		{"onboarding required", onboarding, Caller{Address: stranger}, OutcomeOnboard, LevelStranger, false, false},
		{"onboarding with invite code", onboarding, Caller{Address: stranger, Credentials: Credentials{InviteCode: "BETA2024"}}, OutcomeAllow, LevelContact, false, true},
		{"onboarding with wrong code", onboarding, Caller{Address: stranger, Credentials: Credentials{InviteCode: "beta2024"}}, OutcomeOnboard, LevelStranger, false, false},
		{"blocked caller cannot onboard", onboarding, Caller{Address: banned, Credentials: Credentials{InviteCode: "BETA2024"}}, OutcomeDeny, LevelBlocked, false, false},
		{"careful stranger onboards too", careful, Caller{Address: stranger, Credentials: Credentials{InviteCode: "x"}}, OutcomeAllow, LevelStranger, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			contacts := NewMemoryContacts()
			_ = contacts.SetLevel(ctx, friend, LevelContact)
			_ = contacts.SetLevel(ctx, "0x"+strings.Repeat("55", 32), LevelBlocked)
			g := mustGate(t, GateConfig{
				Policy:    tc.policy,
				Whitelist: mustList(t, vip, banned),
				Blacklist: mustList(t, "0x33*"),
				Contacts:  contacts,
			})
			d, err := g.Decide(ctx, tc.caller)
			if err != nil {
				t.Fatal(err)
			}
			if d.Outcome != tc.want || d.SignatureRequired != tc.sigReq || d.Promoted != tc.promote || tc.level != "" && d.Level != tc.level {
				t.Fatalf("Decide = %+v", d)
			}
			if !d.Allowed() && (d.Reason == "" || strings.Contains(d.Reason, "0x")) {
				t.Errorf("reason %q: missing or leaking", d.Reason)
			}
			if tc.promote {
				if l, _ := contacts.Level(ctx, strings.ToLower(tc.caller.Address)); l != LevelContact {
					t.Errorf("stored level %s after onboarding", l)
				}
			}
		})
	}
}

func TestOnboardingPersists(t *testing.T) {
	ctx := context.Background()
	contacts := NewMemoryContacts()
	policy := &Policy{Name: PresetCustom, Allow: []string{"contact"}, Onboard: Onboarding{InviteCodes: []string{"OpenOnion"}}, Default: ActionDeny}
	g := mustGate(t, GateConfig{Policy: policy, Contacts: contacts})
	lvl, err := g.Onboard(ctx, stranger, Credentials{InviteCode: " OpenOnion "})
	if err != nil || lvl != LevelContact {
		t.Fatalf("Onboard = %s, %v", lvl, err)
	}
	// A restarted host with the same store still knows the contact.
	g2 := mustGate(t, GateConfig{Policy: policy, Contacts: contacts})
	if d, err := g2.Decide(ctx, Caller{Address: stranger}); err != nil || !d.Allowed() || d.Level != LevelContact {
		t.Fatalf("after restart: %+v, %v", d, err)
	}
}

func TestOnboardPayment(t *testing.T) {
	ctx := context.Background()
	credits := NewMemoryCredits()
	g := mustGate(t, GateConfig{
		Policy:  &Policy{Name: PresetCustom, Allow: []string{"contact"}, Onboard: Onboarding{Payment: 10}, Default: ActionDeny},
		Credits: credits,
	})
	if _, err := g.Onboard(ctx, stranger, Credentials{Payment: 10}); !errors.Is(err, ErrInsufficientCredits) {
		t.Fatalf("no credits: %v", err)
	}
	if _, err := credits.Grant(ctx, stranger, 25); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Onboard(ctx, stranger, Credentials{Payment: 5}); !errors.Is(err, ErrPaymentTooLow) || !errors.Is(err, ErrOnboardingFailed) {
		t.Fatalf("low payment: %v", err)
	}
	if _, err := g.Onboard(ctx, stranger, Credentials{InviteCode: "x"}); !errors.Is(err, ErrOnboardingUnavailable) {
		t.Fatalf("invite code where none exist: %v", err)
	}
	d, err := g.Decide(ctx, Caller{Address: stranger, Credentials: Credentials{Payment: 15}})
	if err != nil || !d.Allowed() || !d.Promoted {
		t.Fatalf("payment: %+v, %v", d, err)
	}
	if bal, _ := credits.Balance(ctx, stranger); bal != 15 {
		t.Errorf("balance %d, want 15 (the configured 10 drawn)", bal)
	}
	// Already a contact: nothing more is drawn.
	if lvl, err := g.Onboard(ctx, stranger, Credentials{Payment: 10}); err != nil || lvl != LevelContact {
		t.Fatalf("second onboarding: %s %v", lvl, err)
	}
	if bal, _ := credits.Balance(ctx, stranger); bal != 15 {
		t.Errorf("balance %d after a second onboarding", bal)
	}
	if _, err := g.Onboard(ctx, "", Credentials{Payment: 10}); !errors.Is(err, trust.ErrUnsigned) {
		t.Errorf("anonymous: %v", err)
	}
	if _, err := g.Onboard(ctx, friend, Credentials{}); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no credentials: %v", err)
	}
}

// brokenContacts fails every write, or every read.
type brokenContacts struct {
	*MemoryContacts
	failRead bool
}

func (b brokenContacts) Level(ctx context.Context, addr string) (Level, error) {
	if b.failRead {
		return "", errors.New("database is locked")
	}
	return b.MemoryContacts.Level(ctx, addr)
}

func (b brokenContacts) SetLevel(context.Context, string, Level) error {
	return errors.New("database is locked")
}

func TestStoreFailures(t *testing.T) {
	ctx := context.Background()
	credits := NewMemoryCredits()
	_, _ = credits.Grant(ctx, stranger, 10)
	g := mustGate(t, GateConfig{
		Policy:   &Policy{Name: PresetCustom, Onboard: Onboarding{Payment: 10}, Default: ActionDeny},
		Contacts: brokenContacts{MemoryContacts: NewMemoryContacts()},
		Credits:  credits,
	})
	if _, err := g.Decide(ctx, Caller{Address: stranger, Credentials: Credentials{Payment: 10}}); err == nil || errors.Is(err, ErrOnboardingFailed) {
		t.Fatalf("failed promotion: %v", err)
	}
	if bal, _ := credits.Balance(ctx, stranger); bal != 10 {
		t.Errorf("payment not refunded: balance %d", bal)
	}
	g = mustGate(t, GateConfig{Contacts: brokenContacts{MemoryContacts: NewMemoryContacts(), failRead: true}})
	if _, err := g.Decide(ctx, Caller{Address: stranger}); err == nil {
		t.Error("read failure: no error")
	}
	if d, err := g.Decide(ctx, Caller{}); err != nil || !d.Allowed() {
		t.Errorf("anonymous needs no store: %+v %v", d, err)
	}
	if _, err := g.Decide(ctx, Caller{Address: "0xnope"}); !errors.Is(err, trust.ErrBadAddress) {
		t.Errorf("bad address: %v", err)
	}
}

func TestDecideWithJudge(t *testing.T) {
	ctx := context.Background()
	policy := Prose("I trust requests from contacts with a good history.")
	policy.Onboard = Onboarding{InviteCodes: []string{"BETA"}}
	var calls atomic.Int32
	var last JudgeInput
	verdict := map[string]bool{friend: true}
	var judgeErr error
	judge := JudgeFunc(func(_ context.Context, in JudgeInput) (bool, string, error) {
		calls.Add(1)
		last = in
		if judgeErr != nil {
			return false, "", judgeErr
		}
		if verdict[in.Address] {
			return true, "a contact in good standing", nil
		}
		return false, "no\nhistory " + strings.Repeat("x", 500), nil
	})
	clk := testutil.NewClock(t0)
	contacts := NewMemoryContacts()
	_ = contacts.SetLevel(ctx, friend, LevelContact)
	history := NewMemoryHistory()
	g := mustGate(t, GateConfig{Policy: policy, Contacts: contacts, History: history, Judge: judge, JudgeCacheTTL: time.Minute, Now: clk.Now})

	d, err := g.Decide(ctx, Caller{Address: friend})
	if err != nil || !d.Allowed() || !d.Judged || d.Reason != "a contact in good standing" {
		t.Fatalf("judge allow: %+v %v", d, err)
	}
	if last.Address != friend || last.Level != LevelContact || last.Policy != policy.Prose || last.History.Requests != 0 {
		t.Errorf("judge input %+v", last)
	}
	// Cached per caller.
	_, _ = g.Decide(ctx, Caller{Address: friend})
	if calls.Load() != 1 {
		t.Errorf("judge called %d times, want 1 (cached)", calls.Load())
	}
	clk.Advance(2 * time.Minute)
	_, _ = g.Decide(ctx, Caller{Address: friend})
	if calls.Load() != 2 || last.History.Requests != 2 {
		t.Errorf("after the TTL: %d calls, history %+v", calls.Load(), last.History)
	}

	d, _ = g.Decide(ctx, Caller{Address: stranger})
	if d.Outcome != OutcomeOnboard || !d.Judged || strings.ContainsAny(d.Reason, "\n") || len(d.Reason) > 300 {
		t.Fatalf("judge deny with onboarding: %+v", d)
	}
	d, _ = g.Decide(ctx, Caller{})
	if d.Outcome != OutcomeDeny || !d.SignatureRequired || last.Address != "" || last.Level != LevelAnonymous {
		t.Fatalf("judge deny anonymous: %+v (input %+v)", d, last)
	}
	// Onboarding changes the level, so the cached "no" no longer applies.
	d, _ = g.Decide(ctx, Caller{Address: stranger, Credentials: Credentials{InviteCode: "BETA"}})
	if !d.Allowed() || !d.Promoted {
		t.Fatalf("onboarded: %+v", d)
	}
	n := calls.Load()
	d, _ = g.Decide(ctx, Caller{Address: stranger})
	if calls.Load() != n+1 || last.Level != LevelContact || d.Allowed() {
		t.Errorf("contact re-judged: calls %d→%d, %+v", n, calls.Load(), d)
	}

	// Judge errors deny, and are not cached.
	judgeErr = errors.New("model unavailable")
	other := "0x" + strings.Repeat("66", 32)
	verdict[other] = true
	for range 2 {
		d, err = g.Decide(ctx, Caller{Address: other})
		if err != nil || d.Allowed() || strings.Contains(d.Reason, "unavailable") {
			t.Fatalf("judge error: %+v %v", d, err)
		}
	}
	judgeErr = nil
	if d, _ = g.Decide(ctx, Caller{Address: other}); !d.Allowed() {
		t.Errorf("judge error was cached: %+v", d)
	}
	if h, _ := history.History(ctx, friend); h.Requests != 3 || h.Denials != 0 || !h.LastSeen.Equal(clk.Now()) {
		t.Errorf("history %+v", h)
	}
	if h, _ := history.History(ctx, ""); h.Denials != 1 {
		t.Errorf("anonymous history %+v", h)
	}
}

func TestAskWithoutJudgeDenies(t *testing.T) {
	g := mustGate(t, GateConfig{Policy: Prose("anything")})
	d, err := g.Decide(context.Background(), Caller{Address: stranger})
	if err != nil || d.Allowed() || d.Reason == "" {
		t.Fatalf("%+v %v", d, err)
	}
}

func TestNewGateValidates(t *testing.T) {
	if _, err := NewGate(GateConfig{Policy: &Policy{Default: "sometimes"}}); err == nil {
		t.Fatal("invalid policy accepted")
	}
	g := mustGate(t, GateConfig{})
	if g.Policy().Name != PresetCareful {
		t.Errorf("default policy %s", g.Policy().Name)
	}
}

func TestAdmin(t *testing.T) {
	ctx := context.Background()
	host := testIdentity(t, 100)
	alice := testIdentity(t, 1)
	v, _ := trust.NewVerifier(trust.VerifierConfig{Address: host.Address(), Now: func() time.Time { return t0 }})
	contacts := NewMemoryContacts()
	strict, _ := Preset(PresetStrict)
	g := mustGate(t, GateConfig{Policy: strict, Contacts: contacts, Blacklist: mustList(t, banned)})

	steps := []struct {
		action AdminAction
		addr   string
		want   Level
		err    bool
	}{
		{AdminPromote, alice.Address(), LevelContact, false},
		{AdminPromote, alice.Address(), LevelWhitelisted, false},
		{AdminPromote, alice.Address(), LevelWhitelisted, false},
		{AdminDemote, alice.Address(), LevelContact, false},
		{AdminBlock, alice.Address(), LevelBlocked, false},
		{AdminPromote, alice.Address(), "", true},
		{AdminUnblock, alice.Address(), LevelStranger, false},
		{AdminDemote, alice.Address(), LevelStranger, false},
		{AdminUnblock, banned, LevelBlocked, false}, // the blacklist file still wins
		{"delete", alice.Address(), "", true},
	}
	for i, s := range steps {
		env, err := SignAdmin(host, AdminOp{Action: s.action, Address: s.addr}, t0.Add(time.Duration(i)*time.Second))
		if s.action == "delete" {
			if err == nil {
				t.Error("unknown action signed")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(env)
		op, err := VerifyAdmin(ctx, v, raw)
		if err != nil {
			t.Fatalf("step %d: VerifyAdmin: %v", i, err)
		}
		lvl, err := g.Apply(ctx, op)
		if s.action == AdminPromote && s.err && !errors.Is(err, ErrPromoteBlocked) {
			t.Fatalf("step %d: promoting a blocked caller: %v, want ErrPromoteBlocked", i, err)
		}
		if s.err != (err != nil) || !s.err && lvl != s.want {
			t.Fatalf("step %d %s: level %s, err %v; want %s", i, s.action, lvl, err, s.want)
		}
	}
	// Only the host's own key may administer.
	env, _ := trust.Sign(alice, map[string]any{"admin": "promote", "address": alice.Address(), "to": host.Address(), "timestamp": t0.Unix()})
	raw, _ := json.Marshal(env)
	if _, err := VerifyAdmin(ctx, v, raw); !errors.Is(err, trust.ErrNotAdmin) {
		t.Errorf("admin by another key: %v", err)
	}
	// Replay of an admin operation.
	env, _ = SignAdmin(host, AdminOp{Action: AdminBlock, Address: alice.Address()}, t0)
	raw, _ = json.Marshal(env)
	if _, err := VerifyAdmin(ctx, v, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAdmin(ctx, v, raw); !errors.Is(err, trust.ErrReplay) {
		t.Errorf("admin replay: %v", err)
	}
	// Without "to", or with a bad address.
	for _, p := range []map[string]any{
		{"admin": "block", "address": alice.Address(), "timestamp": t0.Unix()},
		{"admin": "block", "address": "nobody", "to": host.Address(), "timestamp": t0.Unix()},
		{"prompt": "hi", "to": host.Address(), "timestamp": t0.Unix()},
	} {
		env, _ = trust.Sign(host, p)
		raw, _ = json.Marshal(env)
		if _, err := VerifyAdmin(ctx, v, raw); !errors.Is(err, trust.ErrUnauthorized) {
			t.Errorf("VerifyAdmin(%v) = %v", p, err)
		}
	}
}

func TestCredentialsFromPayload(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    Credentials
	}{
		{`{"prompt":"hi","invite_code":"BETA2024"}`, Credentials{InviteCode: "BETA2024"}},
		{`{"payment":10}`, Credentials{Payment: 10}},
		{`{"payment":10.0}`, Credentials{Payment: 10}},
		{`{"payment":10.5,"invite_code":7}`, Credentials{}},
		{`{"payment":"10"}`, Credentials{}},
		{`not json`, Credentials{}},
	} {
		if got := CredentialsFromPayload(json.RawMessage(tc.payload)); got != tc.want {
			t.Errorf("%s: %+v", tc.payload, got)
		}
	}
}
