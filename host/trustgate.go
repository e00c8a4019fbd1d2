package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthost/agenthost/internal/store/sqlite"
	"github.com/agenthost/agenthost/llm"
	"github.com/agenthost/agenthost/trust"
	"github.com/goccy/go-yaml"

	"github.com/agenthost/agenthost/trust/policy"
)

// LevelAdmin is Caller.Level of requests signed with the host's own key.
const LevelAdmin = "admin"

// trustOptions are the trust settings only code can give.
type trustOptions struct {
	policy   *policy.Policy
	judge    policy.Judge
	judgeTTL time.Duration
	// mem holds in-memory trust state for hosts whose store is not SQLite,
	// kept across reloads.
	memOnce sync.Once
	mem     *memoryTrust
}

type memoryTrust struct {
	ledger   *trust.MemoryLedger
	contacts *policy.MemoryContacts
	credits  *policy.MemoryCredits
	history  *policy.MemoryHistory
}

// WithTrustPolicy sets the trust policy in code (it wins over the trust
// level, host.yaml's trust key and WithTrust).
func WithTrustPolicy(p *policy.Policy) Option { return func(s *settings) { s.trust.policy = p } }

// WithJudge sets the judge of a policy whose default is "ask" (a
// natural-language policy): any Go function (policy.JudgeFunc) or agent.
// Without it the host asks the agent's model (policy.LLMJudge).
func WithJudge(j policy.Judge) Option { return func(s *settings) { s.trust.judge = j } }

// WithJudgeCacheTTL sets how long a judge's decision is reused for the same
// caller at the same level (default 10 minutes; negative disables the
// cache). host.yaml's trust mapping may set judge_cache_ttl in seconds.
func WithJudgeCacheTTL(d time.Duration) Option { return func(s *settings) { s.trust.judgeTTL = d } }

// TrustGate is the host's default gate. It verifies signed requests —
// signature, timestamp window, recipient, payload digest of the session and
// attachments, single use through a replay ledger in the host database —
// and applies the trust policy: levels, whitelist and blacklist, stored
// contacts, onboarding by invite code or payment, and the judge of a
// natural-language policy. It implements Onboarder.
type TrustGate struct {
	self     string
	verifier *trust.Verifier
	// lenient accepts payloads without "to"; used for an ONBOARD_SUBMIT
	// whose signer already signed this connection's addressed CONNECT (the
	// reference clients send their onboarding unaddressed).
	lenient  *trust.Verifier
	legacy   bool
	anonAll  bool // anonymous callers may list sessions (trust open)
	log      *slog.Logger
	now      func() time.Time
	cfg      policy.GateConfig
	white    *listSource
	black    *listSource
	cache    *policy.CachedJudge
	contacts policy.Contacts
	credits  policy.Credits

	// Invite codes and payments offered, per address and per client IP:
	// codes cannot be guessed at speed.
	offersByAddr *policy.KeyedLimiter
	offersByIP   *policy.KeyedLimiter

	mu       sync.Mutex
	gate     atomic.Pointer[policy.Gate]
	listErr  atomic.Pointer[string]
	nextScan atomic.Int64
}

var _ Onboarder = (*TrustGate)(nil)

// trustGateBuilder is the default GateBuilder.
func (s *Server) trustGateBuilder(env GateEnv) (Gate, error) {
	return newTrustGate(env, &s.set.trust)
}

// NewTrustGate builds the default gate from env: policy from the
// configuration, stores in the host's database (SQLite) when env came from
// the host, else in memory. Use it in a GateBuilder to wrap the default gate.
func NewTrustGate(env GateEnv) (*TrustGate, error) { return newTrustGate(env, &trustOptions{}) }

func newTrustGate(env GateEnv, opts *trustOptions) (*TrustGate, error) {
	if env.Config == nil || env.Identity == nil {
		return nil, errors.New("trust gate: needs the configuration and the host identity")
	}
	g := &TrustGate{self: env.Identity.Address(), log: env.Logger, now: env.Now}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.now == nil {
		g.now = time.Now
	}
	pol, judgeModel, ttl, err := policyOf(env.Config, opts)
	if err != nil {
		return nil, err
	}
	var ledger trust.Ledger
	var history policy.HistoryStore
	if st, ok := env.store.(*sqlite.Store); ok {
		t := st.Trust(g.now)
		ledger, g.contacts, g.credits, history = t, t, t, t
	} else {
		opts.memOnce.Do(func() {
			opts.mem = &memoryTrust{trust.NewMemoryLedger(g.now), policy.NewMemoryContacts(), policy.NewMemoryCredits(), policy.NewMemoryHistory()}
		})
		g.log.Warn("trust: no host database; the replay ledger, contacts and credits are kept in memory and do not survive a restart")
		ledger, g.contacts, g.credits, history = opts.mem.ledger, opts.mem.contacts, opts.mem.credits, opts.mem.history
	}
	g.legacy = env.Config.LegacySignatures
	g.verifier, err = trust.NewVerifier(trust.VerifierConfig{Address: g.self, Ledger: ledger, Now: g.now, RequireRecipient: !g.legacy})
	if err != nil {
		return nil, err
	}
	g.lenient, err = trust.NewVerifier(trust.VerifierConfig{Address: g.self, Ledger: ledger, Now: g.now})
	if err != nil {
		return nil, err
	}
	g.cfg = policy.GateConfig{Policy: pol, Contacts: g.contacts, Credits: g.credits, Now: g.now, Logger: g.log, JudgeCacheTTL: -1}
	if pol.Default == policy.ActionAsk || pol.Anonymous == policy.ActionAsk {
		g.cfg.History = history
		judge := opts.judge
		if judge == nil {
			m := env.Model
			if judgeModel != "" {
				if m, err = llm.Open(judgeModel); err != nil {
					return nil, fmt.Errorf("trust: judge_model: %w", err)
				}
			}
			if m != nil && strings.HasPrefix(m.Name(), "offline/") {
				// The offline demo model cannot read a policy: callers the
				// policy leaves to the judge are answered 503, saying so.
				g.log.Warn("trust: the trust policy leaves callers to a judge, and the offline model cannot judge; those callers are refused with 503 until judge_model names a real model (e.g. judge_model: openai/gpt-4o-mini under trust: in host.yaml)")
				m = nil
			}
			if m != nil {
				judge = policy.NewLLMJudge(m)
			}
		}
		if judge != nil {
			// Bounded per caller and overall; cache hits cost nothing.
			judge = policy.NewRateLimitedJudge(judge, g.now)
			if opts.judgeTTL != 0 {
				ttl = opts.judgeTTL
			}
			if ttl == 0 {
				ttl = policy.DefaultJudgeCacheTTL
			}
			if ttl > 0 {
				g.cache = policy.NewCachedJudge(judge, ttl, g.now)
				judge = g.cache
			}
			g.cfg.Judge = judge
		}
	}
	g.anonAll = pol.Name == policy.PresetOpen
	g.offersByAddr = policy.NewKeyedLimiter(OnboardAttemptsPerAddress, OnboardAttemptWindow, OnboardAttemptsPerAddress, g.now)
	g.offersByIP = policy.NewKeyedLimiter(OnboardAttemptsPerIP, OnboardAttemptWindow, OnboardAttemptsPerIP, g.now)
	g.white = newListSource("whitelist", env.Config.Whitelist)
	g.black = newListSource("blacklist", env.Config.Blacklist)
	if err := g.rebuild(true); err != nil {
		return nil, err
	}
	return g, nil
}

// policyOf resolves the policy: code, then host.yaml's mapping or text,
// then the level's preset. The mapping may also hold judge_model and
// judge_cache_ttl (seconds).
func policyOf(cfg *Config, opts *trustOptions) (p *policy.Policy, judgeModel string, ttl time.Duration, err error) {
	base := filepath.Dir(cfg.File)
	switch {
	case opts.policy != nil:
		cp := *opts.policy
		p = &cp
		err = p.Validate()
	case cfg.TrustPolicy != nil:
		var m map[string]any
		if err := yaml.Unmarshal(cfg.TrustPolicy, &m); err != nil {
			return nil, "", 0, fmt.Errorf("%w: trust: %v", ErrConfig, err)
		}
		if v, ok := m["judge_model"]; ok {
			judgeModel = fmt.Sprint(v)
			delete(m, "judge_model")
		}
		if v, ok := m["judge_cache_ttl"]; ok {
			n, ok := v.(uint64)
			if !ok {
				return nil, "", 0, fmt.Errorf("%w: trust: judge_cache_ttl: want a whole number of seconds", ErrConfig)
			}
			ttl = time.Duration(n) * time.Second
			delete(m, "judge_cache_ttl")
		}
		p, err = policy.FromValue(m, base)
	case cfg.TrustText != "":
		p, err = policy.FromText(cfg.TrustText, base)
	default:
		var ok bool
		if p, ok = policy.Preset(cfg.Trust); !ok {
			err = fmt.Errorf("unknown trust level %q", cfg.Trust)
		}
	}
	if err != nil {
		return nil, "", 0, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return p, judgeModel, ttl, nil
}

// Onboarding attempts (invite codes, payments) accepted per window.
const (
	OnboardAttemptsPerAddress = 5
	OnboardAttemptsPerIP      = 20
	OnboardAttemptWindow      = 10 * time.Minute
)

// allowOffer rate-limits an onboarding attempt by its signer and IP.
func (g *TrustGate) allowOffer(addr, remote string) error {
	ok := g.offersByAddr.Allow(addr)
	if ip := hostOf(remote); ip != "" && !g.offersByIP.Allow(ip) {
		ok = false
	}
	if !ok {
		return &httpError{Status: http.StatusTooManyRequests, RetryAfter: int(OnboardAttemptWindow / time.Second),
			Msg: fmt.Sprintf("too many onboarding attempts; at most %d per %s per identity and %d per address", OnboardAttemptsPerAddress, OnboardAttemptWindow, OnboardAttemptsPerIP)}
	}
	return nil
}

// hostOf is the IP of a "host:port" remote address ("" if none).
func hostOf(remote string) string {
	if remote == "" {
		return ""
	}
	h, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return h
}

// listRescan is how often list files are checked for changes.
const listRescan = 2 * time.Second

// rebuild reloads changed list files and rebuilds the policy gate. An
// unusable list fails closed: every request is refused until it is fixed.
func (g *TrustGate) rebuild(force bool) error {
	now := g.now()
	if !force && now.UnixNano() < g.nextScan.Load() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !force && now.UnixNano() < g.nextScan.Load() {
		return nil
	}
	g.nextScan.Store(now.Add(listRescan).UnixNano())
	wc, wl, werr := g.white.load(g.log)
	bc, bl, berr := g.black.load(g.log)
	if err := errors.Join(werr, berr); err != nil {
		if force && g.gate.Load() == nil {
			// At start: a host that would refuse every request does not
			// start; the error names the file, the line and why.
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		msg := "this agent's access lists are unavailable; refusing requests until they are fixed"
		g.listErr.Store(&msg)
		return nil
	}
	if wc || bc || g.gate.Load() == nil {
		cfg := g.cfg
		cfg.Whitelist, cfg.Blacklist = wl, bl
		pg, err := policy.NewGate(cfg)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
		g.gate.Store(pg)
	}
	if g.listErr.Load() != nil {
		g.log.Info("trust: access lists readable again; admitting requests by policy")
	}
	g.listErr.Store(nil)
	return nil
}

// Address returns the address requests must be signed to.
func (g *TrustGate) Address() string { return g.self }

// Policy returns the policy in force. Do not modify it.
func (g *TrustGate) Policy() *policy.Policy { return g.cfg.Policy }

// denial is a gate refusal with a message fit for the caller.
type denial struct {
	kind error // ErrUnauthorized or ErrForbidden
	msg  string
}

func (d *denial) Error() string        { return d.msg }
func (d *denial) Is(target error) bool { return target == d.kind }

func unauthorized(msg string) error { return &denial{kind: ErrUnauthorized, msg: msg} }
func forbidden(msg string) error    { return &denial{kind: ErrForbidden, msg: msg} }

// verify checks a request's signature; an unsigned request gives "" and no
// error.
func (g *TrustGate) verify(ctx context.Context, r *Request) (*trust.Verified, error) {
	if !r.Signed() {
		return nil, nil
	}
	var m *trust.Verified
	var err error
	v := g.verifier
	if r.Method == "ONBOARD_SUBMIT" && r.ConnSigner != "" && !g.legacy {
		v = g.lenient
	}
	switch {
	case r.Body != nil:
		m, err = v.Verify(ctx, r.Body)
		if errors.Is(err, trust.ErrUnsigned) && r.Header.Get(trust.HeaderSignature) != "" {
			return nil, unauthorized("signed headers cover only body-less requests; sign the body as a payload envelope")
		}
	case r.Payload != nil || r.Signature != "" || r.From != "":
		// A Request built without its message: the envelope alone (no
		// outer fields for a digest to cover).
		raw, _ := json.Marshal(map[string]any{"payload": r.Payload, "from": r.From, "signature": r.Signature})
		m, err = v.Verify(ctx, raw)
	default:
		m, err = v.VerifyHeaders(ctx, r.Header, r.Method, r.Path)
	}
	if err == nil && v == g.lenient && m.To == "" && m.From != r.ConnSigner {
		err = fmt.Errorf("%w: payload.to required (only the signer of this connection's CONNECT may onboard without it)", trust.ErrWrongRecipient)
	}
	if err == nil && r.NeedsDigest && m.Digest == "" && !g.legacy {
		err = fmt.Errorf("%w: payload.digest required: sign the session, images and files with trust.BodyDigest", trust.ErrDigestMismatch)
	}
	if err != nil {
		if errors.Is(err, trust.ErrUnauthorized) {
			return nil, unauthorized(err.Error())
		}
		g.log.Error("trust: verifying a signature", "err", err)
		return nil, fmt.Errorf("trust: %w", err)
	}
	return m, nil
}

// Admit implements Gate.
func (g *TrustGate) Admit(ctx context.Context, r *Request) (Caller, error) {
	m, err := g.verify(ctx, r)
	if err != nil {
		return Caller{}, err
	}
	if err := g.rebuild(false); err != nil {
		return Caller{}, err
	}
	if msg := g.listErr.Load(); msg != nil {
		return Caller{}, forbidden(*msg)
	}
	if m == nil && r.Connection != nil && r.Connection.Address != "" {
		return g.admitUnsignedFrame(ctx, r)
	}
	var c policy.Caller
	if m != nil {
		if m.From == g.self {
			// The host's own key: the operator, admitted and seeing all.
			return Caller{Address: m.From, Level: LevelAdmin, SeesAll: true, Payload: m.Payload}, nil
		}
		c = policy.Caller{Address: m.From, Credentials: policy.CredentialsFromPayload(m.Payload)}
		if c.Credentials.Present() {
			if err := g.allowOffer(c.Address, r.RemoteAddr); err != nil {
				return Caller{}, err
			}
		}
	}
	caller, err := g.decide(ctx, c)
	if m != nil {
		caller.Payload = m.Payload
	}
	return caller, err
}

// admitUnsignedFrame decides an unsigned frame on a connection a signed
// CONNECT opened (the reference TypeScript client signs CONNECT only).
// Where the policy admits anonymous callers (open, careful) the frame goes
// on as the connection's signer, whose standing is decided again (a caller
// blocked since is refused); where it does not (strict), every frame must
// be signed.
func (g *TrustGate) admitUnsignedFrame(ctx context.Context, r *Request) (Caller, error) {
	conn := *r.Connection
	if conn.Level == LevelAdmin {
		return Caller{}, unauthorized("signature required: the operator's frames must each be signed")
	}
	d := g.cfg.Policy.Evaluate("", policy.LevelAnonymous)
	if d.Outcome == policy.OutcomeAsk {
		var err error
		if d, err = g.gate.Load().Decide(ctx, policy.Caller{}); err != nil {
			g.log.Error("trust: deciding", "err", err)
			return Caller{}, fmt.Errorf("trust: %w", err)
		}
	}
	if d.Outcome != policy.OutcomeAllow {
		return Caller{}, unauthorized("signature required: this agent's trust policy needs every frame signed (sign each frame with the connection's nonce and the next seq; see docs/trust.md)")
	}
	c, err := g.decide(ctx, policy.Caller{Address: conn.Address})
	if err != nil {
		var ob *OnboardRequired
		if errors.As(err, &ob) {
			return Caller{}, forbidden(ob.Error())
		}
		return Caller{}, err
	}
	return c, nil
}

// PreAdmit implements preAdmitter: before a body or first frame is read,
// a caller is admitted if the policy admits anonymous callers outright
// (no judge is asked for this), or by signed headers (X-Co-*).
func (g *TrustGate) PreAdmit(ctx context.Context, r *Request) bool {
	if r.Header != nil && r.Header.Get(trust.HeaderSignature) != "" {
		_, err := g.Admit(ctx, r)
		return err == nil
	}
	if g.listErr.Load() != nil {
		return false
	}
	return g.cfg.Policy.Evaluate("", policy.LevelAnonymous).Outcome == policy.OutcomeAllow
}

// decide applies the policy to a verified (or anonymous) caller.
func (g *TrustGate) decide(ctx context.Context, c policy.Caller) (Caller, error) {
	d, err := g.gate.Load().Decide(ctx, c)
	if err != nil {
		g.log.Error("trust: deciding", "err", err)
		return Caller{}, fmt.Errorf("trust: %w", err)
	}
	if d.Promoted && g.cache != nil {
		g.cache.Forget(c.Address)
	}
	switch d.Outcome {
	case policy.OutcomeAllow:
		return Caller{Address: c.Address, Level: string(d.Level), ListsAnonymous: c.Address == "" && g.anonAll}, nil
	case policy.OutcomeOnboard:
		return Caller{}, &OnboardRequired{Identity: c.Address, Methods: d.Methods, PaymentAmount: float64(d.PaymentAmount), Reason: d.Reason}
	}
	if d.Unavailable {
		return Caller{}, errorf(http.StatusServiceUnavailable, "%s", d.Reason)
	}
	if d.SignatureRequired {
		msg := "signature required"
		if d.Reason != "" {
			msg += ": " + d.Reason
		}
		return Caller{}, unauthorized(msg)
	}
	if c.Address != "" && d.Level != policy.LevelBlocked {
		// The caller's own address, to give the operator who admits it.
		return Caller{}, forbidden(fmt.Sprintf("%s (your address is %s; to be admitted, ask this agent's operator: agenthost trust promote %s)", d.Reason, c.Address, c.Address))
	}
	return Caller{}, forbidden(d.Reason)
}

// Onboard implements Onboarder: a signed ONBOARD_SUBMIT with an invite
// code or a payment makes its signer a contact.
func (g *TrustGate) Onboard(ctx context.Context, r *Request) (Caller, string, error) {
	m, err := g.verify(ctx, r)
	if err != nil {
		return Caller{}, "", err
	}
	if m == nil {
		return Caller{}, "", unauthorized("signature required: sign ONBOARD_SUBMIT with the identity to onboard")
	}
	if err := g.allowOffer(m.From, r.RemoteAddr); err != nil {
		return Caller{}, "", err
	}
	if err := g.rebuild(false); err != nil {
		return Caller{}, "", err
	}
	if msg := g.listErr.Load(); msg != nil {
		return Caller{}, "", forbidden(*msg)
	}
	level, err := g.gate.Load().Onboard(ctx, m.From, policy.CredentialsFromPayload(m.Payload))
	if errors.Is(err, policy.ErrOnboardingFailed) {
		return Caller{}, "", forbidden(err.Error())
	}
	if err != nil {
		g.log.Error("trust: onboarding", "err", err)
		return Caller{}, "", fmt.Errorf("trust: %w", err)
	}
	if g.cache != nil {
		g.cache.Forget(m.From)
	}
	return Caller{Address: m.From, Level: string(level), SeesAll: m.From == g.self, Payload: m.Payload},
		"welcome: you are now a " + string(level) + " of this agent", nil
}

// Admin verifies a signed admin operation (policy.SignAdmin: signed by the
// host's own identity, addressed to it) and applies it. It returns the
// operation and the address's effective level afterwards.
func (g *TrustGate) Admin(ctx context.Context, raw []byte) (policy.AdminOp, policy.Level, error) {
	op, err := policy.VerifyAdmin(ctx, g.verifier, raw)
	if err != nil {
		if errors.Is(err, trust.ErrUnauthorized) {
			return op, "", unauthorized(err.Error())
		}
		return op, "", fmt.Errorf("trust: %w", err)
	}
	if err := g.rebuild(false); err != nil {
		return op, "", err
	}
	if msg := g.listErr.Load(); msg != nil {
		return op, "", errorf(503, "%s", *msg)
	}
	level, err := g.gate.Load().Apply(ctx, op)
	if err != nil {
		if errors.Is(err, policy.ErrPromoteBlocked) {
			return op, "", errorf(409, "%s", err.Error())
		}
		return op, "", fmt.Errorf("trust: %w", err)
	}
	if g.cache != nil {
		g.cache.Forget(op.Address)
	}
	return op, level, nil
}
