// Package client talks to hosted agents: directly at their URL, or by
// address through a relay (docs/protocol.md §2–4).
//
//	c, err := client.Connect(ctx, "0x3d40…", client.WithRelay("wss://relay.example"))
//	res, err := c.Input(ctx, "translate 'bonjour'", client.OnEvent(func(e client.Event) {
//		if e.Type == client.EventStream {
//			fmt.Print(e.Chunk)
//		}
//	}))
//	fmt.Println(res.Result, res.SessionID)
//
// Every request is signed with the caller's identity (by default the key in
// .co/keys, created on first use) unless WithoutSigning is given. A client
// keeps the session of its last answer, so the next Input continues the
// conversation; WithSession starts from a given one.
//
// Agents given by address are resolved through the relay: the client tries
// the endpoints the agent announced, keeping one whose /info reports the
// same address, and falls back to the relay's /ws/input otherwise.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/relay"
	"github.com/agenthost/agenthost/trust"
)

// Client is a connection to one agent. Its methods are safe for concurrent
// use, but runs in one session are sequential at the agent (ErrBusy).
type Client struct {
	o       options
	id      *trust.Identity // nil when not signing
	address string          // the agent's address, "" if unknown (unsigned direct use)
	info    *Info           // the agent's /info, when reached directly
	base    string          // http(s) base URL when direct, "" via the relay
	relay   string          // relay base URL (ws/wss) when via the relay
	// verifier checks the agent's signatures on its answers.
	verifier *trust.Verifier

	mu        sync.Mutex // guards session and lastEvent
	session   string
	lastEvent int64 // id of the last event of the current run seen, for Resume
}

// Info is what an agent says about itself at GET /info.
type Info struct {
	Name     string   `json:"name"`
	Address  string   `json:"address"`
	Tools    []string `json:"tools"`
	Model    string   `json:"model"`
	Trust    string   `json:"trust"`
	Version  string   `json:"version"`
	Summary  string   `json:"summary"`
	Examples []string `json:"examples"`
}

type options struct {
	id          *trust.Identity
	keyDir      string
	unsigned    bool
	relay       string
	session     string
	invite      string
	payment     int64
	hc          *http.Client
	onQuestion  QuestionFunc
	onApproval  ApprovalFunc
	probe       time.Duration
	idle        time.Duration
	now         func() time.Time
	directFirst bool
}

// Option configures Connect.
type Option func(*options)

// WithKeys signs requests with id.
func WithKeys(id *trust.Identity) Option { return func(o *options) { o.id = id } }

// WithKeyDir loads (or creates) the signing key in dir/keys/agent.key
// instead of the default (.co in the working directory when it has a key,
// else ~/.co).
func WithKeyDir(dir string) Option { return func(o *options) { o.keyDir = dir } }

// WithoutSigning sends plain, unsigned requests: the agent sees an
// anonymous caller, admitted only where its trust level accepts one.
func WithoutSigning() Option { return func(o *options) { o.unsigned = true } }

// WithRelay sets the relay through which agents given by address are
// found and reached (a ws(s):// or http(s):// base URL). Without it, the
// environment variable AGENTHOST_RELAY_URL is used.
func WithRelay(url string) Option { return func(o *options) { o.relay = url } }

// WithSession continues the session with this id.
func WithSession(id string) Option { return func(o *options) { o.session = id } }

// WithInviteCode answers an agent's ONBOARD_REQUIRED with this invite
// code, so a stranger becomes a contact and its request goes on.
func WithInviteCode(code string) Option { return func(o *options) { o.invite = code } }

// WithPayment lets the client pay up to credits to onboard with an agent
// whose policy admits strangers for a payment (the credits come from the
// agent's ledger, granted by its operator: agenthost credits grant). It pays
// exactly what the agent asks, and refuses, with ErrOnboardRequired, when
// the agent asks more than credits. An invite code, when both are given
// and the agent takes codes, is used first.
func WithPayment(credits int64) Option { return func(o *options) { o.payment = credits } }

// WithHTTPClient sets the HTTP client for /info, sessions, the relay's API
// and WebSocket dials.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithQuestionHandler sets the default answerer of the agent's questions
// (ask_user) for every Input; see OnQuestion.
func WithQuestionHandler(f QuestionFunc) Option { return func(o *options) { o.onQuestion = f } }

// WithApprovalHandler sets the default decider of tool approvals for every
// Input; see OnApproval.
func WithApprovalHandler(f ApprovalFunc) Option { return func(o *options) { o.onApproval = f } }

// WithProbeTimeout bounds each try of an announced direct endpoint
// (default 2 s).
func WithProbeTimeout(d time.Duration) Option { return func(o *options) { o.probe = d } }

// WithIdleTimeout is how long a run may go without any frame from the agent
// before the connection counts as lost (default 2 minutes; agents ping
// every 30 s).
func WithIdleTimeout(d time.Duration) Option { return func(o *options) { o.idle = d } }

// WithRelayOnly skips an agent's announced direct endpoints and always
// goes through the relay.
func WithRelayOnly() Option { return func(o *options) { o.directFirst = false } }

// EnvRelayURL names the environment variable holding the default relay.
const EnvRelayURL = "AGENTHOST_RELAY_URL"

// Connect prepares a client of the agent at target: a URL
// ("http://host:8000", "https://…", "host:port", "ws://…/ws") or an
// address ("0x…", resolved through the relay). It loads the signing key,
// asks the agent's /info (directly) or the relay (by address), and
// returns once the agent is known to be reachable.
func Connect(ctx context.Context, target string, opts ...Option) (*Client, error) {
	o := options{probe: 2 * time.Second, idle: 2 * time.Minute, now: time.Now, directFirst: true}
	for _, opt := range opts {
		opt(&o)
	}
	if o.hc == nil {
		o.hc = http.DefaultClient
	}
	c := &Client{o: o, session: o.session}
	if !o.unsigned {
		id, err := loadKeys(o)
		if err != nil {
			return nil, err
		}
		c.id = id
	}
	target = strings.TrimSpace(target)
	if strings.HasPrefix(target, "0x") || strings.HasPrefix(target, "0X") {
		if err := c.resolve(ctx, target); err != nil {
			return nil, err
		}
		return c, c.newVerifier()
	}
	base, err := httpBase(target)
	if err != nil {
		return nil, err
	}
	info, err := fetchInfo(ctx, o.hc, base)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrOffline, base, err)
	}
	c.base, c.info, c.address = base, info, strings.ToLower(info.Address)
	return c, c.newVerifier()
}

// newVerifier prepares the check of the agent's signed answers: addressed
// to this client's identity (or, unsigned, to nobody).
func (c *Client) newVerifier() error {
	if c.address == "" {
		return nil
	}
	self := c.address
	if c.id != nil {
		self = c.id.Address()
	}
	v, err := trust.NewVerifier(trust.VerifierConfig{Address: self, Now: c.o.now})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.verifier = v
	return nil
}

// loadKeys returns the identity to sign with.
func loadKeys(o options) (*trust.Identity, error) {
	if o.id != nil {
		return o.id, nil
	}
	dir := o.keyDir
	if dir == "" {
		dir = DefaultKeyDir()
	}
	id, _, err := trust.LoadOrCreateIdentity(dir)
	if err != nil {
		return nil, fmt.Errorf("client: signing key: %w", err)
	}
	return id, nil
}

// DefaultKeyDir is where the client keeps its key by default: the
// project's .co when it holds one, else ~/.co (docs/protocol.md §1).
func DefaultKeyDir() string {
	if _, err := os.Stat(filepath.Join(".co", trust.KeyFile)); err == nil {
		return ".co"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".co")
	}
	return ".co"
}

// resolve finds the agent with address addr through the relay.
func (c *Client) resolve(ctx context.Context, addr string) error {
	a, err := trust.NormalizeAddress(addr)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.address = a
	r := c.o.relay
	if r == "" {
		r = os.Getenv(EnvRelayURL)
	}
	if r == "" {
		return fmt.Errorf("%w: agent %s is given by address: a relay is needed to reach it: name one, or set $%s", ErrNoRelay, a, EnvRelayURL)
	}
	base, err := relay.NormalizeRelayURL(r)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.relay = base
	ag, err := relay.LookupAgent(ctx, c.o.hc, base, a)
	if errors.Is(err, relay.ErrAgentNotFound) {
		return &Error{Kind: ErrNotFound, Message: fmt.Sprintf("agent %s is not known to the relay %s", a, base)}
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOffline, err)
	}
	if c.o.directFirst {
		for _, ep := range ag.Endpoints {
			b, err := httpBase(ep)
			if err != nil || !strings.HasPrefix(ep, "http") {
				continue // ws endpoints duplicate the http ones
			}
			pctx, cancel := context.WithTimeout(ctx, c.o.probe)
			info, err := fetchInfo(pctx, c.o.hc, b)
			cancel()
			if err == nil && strings.EqualFold(info.Address, a) {
				c.base, c.info = b, info
				return nil
			}
		}
	}
	if !ag.Online {
		return &Error{Kind: ErrOffline, Message: fmt.Sprintf("agent %s is not connected to the relay %s and none of its endpoints answered", a, base)}
	}
	return nil
}

// Address returns the agent's address ("" when it was reached at a URL
// that reported none).
func (c *Client) Address() string { return c.address }

// Info returns the agent's /info when it was reached directly, else nil.
func (c *Client) Info() *Info { return c.info }

// Relayed reports whether requests go through the relay.
func (c *Client) Relayed() bool { return c.base == "" }

// Identity returns the signing identity, or nil without signing.
func (c *Client) Identity() *trust.Identity { return c.id }

// SessionID returns the session the next Input continues ("" for a new
// one).
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// SetSession makes the next Input continue session id ("" starts a new
// session).
func (c *Client) SetSession(id string) {
	c.mu.Lock()
	c.session, c.lastEvent = id, 0
	c.mu.Unlock()
}

// httpBase turns what a user types into the agent's http(s) base URL.
func httpBase(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("client: agent URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "http"
	case "https", "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("client: agent URL %q: want http(s) or ws(s)", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("client: agent URL %q: no host", raw)
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimSuffix(p, "/ws")
	u.Path, u.RawPath, u.RawQuery, u.Fragment = p, "", "", ""
	return u.String(), nil
}

// wsBase is the WebSocket form of an http(s) base URL.
func wsBase(httpBase string) string {
	if s, ok := strings.CutPrefix(httpBase, "https://"); ok {
		return "wss://" + s
	}
	return "ws://" + strings.TrimPrefix(httpBase, "http://")
}

// fetchInfo reads GET {base}/info.
func fetchInfo(ctx context.Context, hc *http.Client, base string) (*Info, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/info", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /info: %s", resp.Status)
	}
	var info Info
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("GET /info: %w", err)
	}
	return &info, nil
}
