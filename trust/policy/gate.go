package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/agenthost/agenthost/trust"
)

// DefaultJudgeCacheTTL is how long a Gate remembers a judge's decision for
// one caller at one level.
const DefaultJudgeCacheTTL = 10 * time.Minute

// GateConfig configures a Gate. Only Policy matters for a simple host; the
// stores default to in-memory ones, which do not survive restarts.
type GateConfig struct {
	// Policy is the trust policy (Default if nil).
	Policy *Policy
	// Whitelist and Blacklist are the operator's access lists (host()
	// parameters or list files). The blacklist always wins.
	Whitelist, Blacklist *List
	// Contacts stores promoted, whitelisted and blocked addresses.
	Contacts Contacts
	// Credits is the ledger payment onboarding draws on.
	Credits Credits
	// History counts each caller's decisions for the judge; nil keeps none.
	History HistoryStore
	// Judge decides for ActionAsk. Without one, those callers are refused.
	Judge Judge
	// JudgeCacheTTL is how long a judge decision is reused for the same
	// caller at the same level: DefaultJudgeCacheTTL if zero, no caching if
	// negative.
	JudgeCacheTTL time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Logger receives decisions (debug) and failures; never keys, never
	// list contents. slog.Default() if nil.
	Logger *slog.Logger
}

// Gate applies a trust policy to callers: the access lists, stored levels,
// onboarding, the judge and its cache. It is safe for concurrent use.
type Gate struct {
	policy   *Policy
	white    *List
	black    *List
	contacts Contacts
	credits  Credits
	history  HistoryStore
	judge    Judge
	cache    *CachedJudge
	now      func() time.Time
	log      *slog.Logger
}

// NewGate returns a Gate for cfg; the policy is validated.
func NewGate(cfg GateConfig) (*Gate, error) {
	g := &Gate{
		policy:   cfg.Policy,
		white:    cfg.Whitelist,
		black:    cfg.Blacklist,
		contacts: cfg.Contacts,
		credits:  cfg.Credits,
		history:  cfg.History,
		judge:    cfg.Judge,
		now:      cfg.Now,
		log:      cfg.Logger,
	}
	if g.policy == nil {
		g.policy = Default()
	}
	if err := g.policy.Validate(); err != nil {
		return nil, err
	}
	if g.contacts == nil {
		g.contacts = NewMemoryContacts()
	}
	if g.credits == nil {
		g.credits = NewMemoryCredits()
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.judge != nil && cfg.JudgeCacheTTL >= 0 {
		ttl := cfg.JudgeCacheTTL
		if ttl == 0 {
			ttl = DefaultJudgeCacheTTL
		}
		g.cache = NewCachedJudge(g.judge, ttl, g.now)
		g.judge = g.cache
	}
	return g, nil
}

// Policy returns the gate's policy. Do not modify it.
func (g *Gate) Policy() *Policy { return g.policy }

// Caller is who is asking: the address a Verifier proved, or "" for an
// unsigned (anonymous) caller, and any onboarding credentials in the
// request's signed payload.
type Caller struct {
	Address     string
	Credentials Credentials
}

// Level returns the effective level of a signed caller: blocked if the
// blacklist or the store says so; otherwise whitelisted if the whitelist or
// the store says so; otherwise the stored level (contact or stranger).
func (g *Gate) Level(ctx context.Context, addr string) (Level, error) {
	if addr == "" {
		return LevelAnonymous, nil
	}
	addr, err := trust.NormalizeAddress(addr)
	if err != nil {
		return "", err
	}
	if g.black.Match(addr) {
		return LevelBlocked, nil
	}
	stored, err := g.contacts.Level(ctx, addr)
	if err != nil {
		return "", fmt.Errorf("trust: reading contact level: %w", err)
	}
	switch {
	case stored == LevelBlocked:
		return LevelBlocked, nil
	case stored == LevelWhitelisted || g.white.Match(addr):
		return LevelWhitelisted, nil
	case stored == LevelContact:
		return LevelContact, nil
	}
	return LevelStranger, nil
}

// Decide decides whether a caller may use the agent. The outcome is allow,
// deny or onboard, never ask: the judge is consulted here. Onboarding
// credentials in c make a stranger a contact on the way. A judge failure
// denies. An error means a store failed: the caller must refuse the request
// (500). Each decision is counted in the HistoryStore.
func (g *Gate) Decide(ctx context.Context, c Caller) (Decision, error) {
	addr := ""
	level := LevelAnonymous
	if c.Address != "" {
		var err error
		if addr, err = trust.NormalizeAddress(c.Address); err != nil {
			return Decision{}, err
		}
		if level, err = g.Level(ctx, addr); err != nil {
			return Decision{}, err
		}
	}
	d := g.policy.Evaluate(addr, level)
	if d.ByDefault && level == LevelStranger && c.Credentials.Present() {
		lvl, err := g.Onboard(ctx, addr, c.Credentials)
		switch {
		case err == nil:
			d = Decision{Outcome: OutcomeAllow, Level: lvl, Promoted: true}
		case !isOnboardRefusal(err):
			return Decision{}, err
		case d.Outcome != OutcomeAllow:
			// A refused onboarding says why; the default still applies.
			d.Reason = err.Error()
		}
	}
	if d.Outcome == OutcomeAsk {
		d = g.ask(ctx, addr, level)
	}
	g.record(ctx, addr, d)
	g.log.Debug("trust: decision", "caller", callerName(addr), "level", d.Level, "outcome", d.Outcome, "reason", d.Reason)
	return d, nil
}

func isOnboardRefusal(err error) bool {
	return errors.Is(err, ErrOnboardingFailed)
}

// ask puts a caller to the judge.
func (g *Gate) ask(ctx context.Context, addr string, level Level) Decision {
	d := Decision{Level: level, ByDefault: true}
	if g.judge == nil {
		g.log.Warn("trust: the policy asks a judge and none is configured; refusing", "caller", callerName(addr))
		d.Outcome, d.Reason, d.Unavailable = OutcomeDeny, "this agent's trust policy could not be evaluated: it has no model to judge callers (its operator sets judge_model)", true
		return d
	}
	in := JudgeInput{Address: addr, Level: level, Policy: g.policy.Prose}
	if g.history != nil {
		h, err := g.history.History(ctx, addr)
		if err != nil {
			g.log.Error("trust: reading caller history for the judge", "caller", callerName(addr), "err", err)
		}
		in.History = h
	}
	allow, reason, err := g.judge.Judge(ctx, in)
	d.Judged = true
	switch {
	case errors.As(err, new(*errJudgeBusy)):
		g.log.Info("trust: judge rate limit; refusing", "caller", callerName(addr))
		d.Outcome, d.Reason, d.Unavailable = OutcomeDeny, err.Error(), true
	case err != nil:
		g.log.Error("trust: judge failed; refusing", "caller", callerName(addr), "err", err)
		d.Outcome, d.Reason, d.Unavailable = OutcomeDeny, "this agent's trust policy could not be evaluated: its judge failed; try again later", true
	case allow:
		d.Outcome, d.Reason = OutcomeAllow, clipReason(reason)
	default:
		if reason = clipReason(reason); reason == "" {
			reason = "not admitted by this agent's trust policy"
		}
		g.deny(&d, reason)
	}
	return d
}

// deny refuses d, offering a signature to anonymous callers and onboarding
// to strangers when the policy has it.
func (g *Gate) deny(d *Decision, reason string) {
	d.Outcome, d.Reason = OutcomeDeny, reason
	switch {
	case d.Level == LevelAnonymous:
		d.SignatureRequired = true
	case d.Level == LevelStranger && g.policy.Onboard.Enabled():
		d.Outcome, d.Methods, d.PaymentAmount = OutcomeOnboard, g.policy.Onboard.Methods(), g.policy.Onboard.Payment
	}
}

func (g *Gate) record(ctx context.Context, addr string, d Decision) {
	if g.history == nil {
		return
	}
	if err := g.history.Record(ctx, addr, d.Allowed(), g.now()); err != nil {
		g.log.Error("trust: recording caller history", "caller", callerName(addr), "err", err)
	}
}

// forget drops cached judge decisions for addr.
func (g *Gate) forget(addr string) {
	if g.cache != nil {
		g.cache.Forget(addr)
	}
}

func callerName(addr string) string {
	if addr == "" {
		return string(LevelAnonymous)
	}
	return addr
}

// clipReason keeps a judge's reason short and printable.
func clipReason(s string) string {
	const limit = 300
	out := make([]rune, 0, min(len(s), limit))
	for _, r := range s {
		if len(out) == limit {
			break
		}
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}
