package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
	"github.com/agenthost/agenthost/trust"
)

// Trust levels (docs/trust.md).
const (
	TrustOpen    = "open"
	TrustCareful = "careful"
	TrustStrict  = "strict"
)

// Request is what a Gate sees of a request: the transport details and, for
// signed requests, the envelope. It is the same for POST /input, signed
// GETs and WebSocket CONNECT/INPUT, so one policy covers all of them.
type Request struct {
	// Transport is "http", "ws" or "relay".
	Transport string
	// Method and Path are the HTTP request line ("GET", "/sessions"); for
	// WebSocket frames Method is the frame type ("CONNECT", "INPUT").
	Method string
	Path   string
	// Header holds the HTTP headers (X-Co-From, X-Co-Signature and
	// X-Co-Timestamp on signed GETs); nil for frames.
	Header     http.Header
	RemoteAddr string
	// Payload, From and Signature are the signed envelope of docs/protocol.md
	// §1, when the request has one; Payload is the raw JSON that was
	// signed.
	Payload   json.RawMessage
	From      string
	Signature string
	// Timestamp is the envelope's optional outer timestamp.
	Timestamp int64
	// Body is the whole message as received (the POST /input body, the
	// WebSocket frame), which a verifier needs to check a payload digest
	// of the session and attachments beside the payload; nil for GETs.
	Body []byte
	// NeedsDigest: the request carries a session, images or files that a
	// signed payload must cover with its digest (POST /input, INPUT).
	NeedsDigest bool
	// Connection is, for a frame on a WebSocket or relayed connection
	// whose CONNECT was admitted, the caller it admitted. An unsigned frame
	// on such a connection asks the gate whether that caller may go on
	// without signing each frame (open and careful: yes; strict: no); a
	// gate that admits it answers with this caller.
	Connection *Caller
	// ConnSigner is the verified signer of this connection's CONNECT,
	// admitted or not (it may be onboarding).
	ConnSigner string
}

// Signed reports whether the request carries a signature to verify.
func (r *Request) Signed() bool {
	return r.Signature != "" || r.From != "" || (r.Header != nil && r.Header.Get("X-Co-Signature") != "")
}

// Caller is an admitted requester.
type Caller struct {
	// Address is the verified signer's address; "" for an anonymous
	// caller.
	Address string
	// Level is the caller's standing: "stranger", "contact",
	// "whitelisted"...
	Level string
	// SeesAll lets the caller see and list every session: the host's own
	// admin identity only.
	SeesAll bool
	// ListsAnonymous lets an anonymous caller list the anonymous sessions
	// (trust "open", the seed's curl example). It never shows a signed
	// caller's sessions.
	ListsAnonymous bool
	// Payload is the signed payload the gate verified, byte for byte; nil
	// for unsigned requests and gates that verify nothing. The host takes
	// what it runs (prompt, answers, frame binding) from it.
	Payload json.RawMessage
}

// Gate admits or refuses requests. Errors wrap ErrUnauthorized (401: no or
// bad signature) or ErrForbidden (403: refused by policy); an
// *OnboardRequired error asks a WebSocket client to onboard first.
//
// The default gate (TrustGate) verifies signatures and applies the trust
// policy; LevelGate implements the bare levels for unsigned callers.
type Gate interface {
	Admit(ctx context.Context, r *Request) (Caller, error)
}

// Onboarder is implemented by gates that let strangers become contacts over
// WebSocket (ONBOARD_SUBMIT). r carries the ONBOARD_SUBMIT envelope.
type Onboarder interface {
	Onboard(ctx context.Context, r *Request) (caller Caller, message string, err error)
}

// OnboardRequired is a Gate's answer to a stranger who could be admitted
// after onboarding; over WebSocket it becomes ONBOARD_REQUIRED.
type OnboardRequired struct {
	Identity      string
	Methods       []string // "invite_code", "payment"
	PaymentAmount float64
	// Reason is the message plain HTTP callers get with the 403.
	Reason string
}

func (e *OnboardRequired) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	return "onboarding required"
}

// Unwrap makes an *OnboardRequired an ErrForbidden for plain HTTP.
func (e *OnboardRequired) Unwrap() error { return ErrForbidden }

// Errors a Gate wraps.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
)

// LevelGate is the gate of the three trust levels for unsigned callers:
// "open" and "careful" admit anonymous callers, "strict" requires a
// signature. It does not verify signatures: a signed request is admitted as
// anonymous where anonymous callers are, and refused under strict; a gate
// from the trust package replaces it to verify them.
type LevelGate struct{ Level string }

// Admit implements Gate.
func (g LevelGate) Admit(_ context.Context, r *Request) (Caller, error) {
	switch g.Level {
	case TrustOpen:
		return Caller{Level: "stranger", ListsAnonymous: true}, nil
	case TrustCareful, "":
		return Caller{Level: "stranger"}, nil
	case TrustStrict:
		if r.Signed() {
			return Caller{}, fmt.Errorf("%w: signature verification is not available on this host", ErrUnauthorized)
		}
		return Caller{}, fmt.Errorf("%w: signature required", ErrUnauthorized)
	}
	return Caller{}, fmt.Errorf("%w: unknown trust level %q", ErrForbidden, g.Level)
}

// GateEnv is what a GateBuilder may use: the resolved configuration (trust
// level or policy mapping, whitelist, blacklist), the host's identity
// (requests' `to` must be its address) and the logger. It also carries the
// host's database, where NewTrustGate keeps its replay ledger, contacts and
// credits, so pass the GateEnv a builder was given on to NewTrustGate.
type GateEnv struct {
	Config   *Config
	Identity *trust.Identity
	Logger   *slog.Logger
	// Model is the agent's model, which a natural-language policy's judge
	// asks; nil when unknown.
	Model llm.Model
	// Now is the host's clock.
	Now func() time.Time

	// store is the host's session store; a GateEnv built outside the host
	// has none, and NewTrustGate then keeps its state in memory.
	store store.Store
}

// GateBuilder builds the gate from the configuration. It runs at start and
// again on every reload, so trust settings in host.yaml reload too.
type GateBuilder func(env GateEnv) (Gate, error)

// WithGateBuilder builds the gate from the configuration and store (see
// GateBuilder); WithGate, when also given, wins.
func WithGateBuilder(b GateBuilder) Option { return func(s *settings) { s.gateBuilder = b } }
