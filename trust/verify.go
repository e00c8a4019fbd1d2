package trust

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// authError is a verification failure: the caller did not prove who it is.
// Every one matches ErrUnauthorized with errors.Is.
type authError struct{ msg string }

// Error returns the reason, fit to show the caller.
func (e *authError) Error() string { return e.msg }

// Is makes every authError match ErrUnauthorized.
func (e *authError) Is(target error) bool { return target == ErrUnauthorized }

// ErrUnauthorized matches every verification failure below; a host answers
// it with 401 and the error's text, which names the reason and never holds
// secrets. Errors that do not match it (a failing replay ledger) are the
// host's own fault: answer 500 and refuse the request.
var ErrUnauthorized = errors.New("unauthorized")

// Verification failures. Each matches ErrUnauthorized.
var (
	// ErrUnsigned: the message carries no signature (an anonymous caller).
	ErrUnsigned error = &authError{"signature required"}
	// ErrMalformed: the signed message is not shaped as the protocol says.
	ErrMalformed error = &authError{"malformed signed message"}
	// ErrBadSignature: the signature does not verify for the claimed signer.
	ErrBadSignature error = &authError{"invalid signature"}
	// ErrExpired: payload.timestamp is outside the accepted window.
	ErrExpired error = &authError{"signature expired"}
	// ErrReplay: this signed message was already used.
	ErrReplay error = &authError{"signature already used"}
	// ErrWrongRecipient: payload.to names another agent.
	ErrWrongRecipient error = &authError{"wrong recipient"}
	// ErrDigestMismatch: the request's session, images or files differ from
	// what payload.digest signed.
	ErrDigestMismatch error = &authError{"request does not match its signed digest"}
	// ErrNotAdmin: a message that only the verifier's own identity may sign
	// (an admin operation, policy.VerifyAdmin) was signed by another.
	ErrNotAdmin error = &authError{"admin operations must be signed by this agent's own key"}
)

// DefaultWindow is how far payload.timestamp may be from the verifier's
// clock, either way.
const DefaultWindow = 300 * time.Second

// Ledger remembers which signed messages were used, so each is accepted
// once. A host backs it with its database so it survives restarts.
type Ledger interface {
	// Seen records digest until expires and reports whether it was already
	// recorded (and not yet expired). It must be atomic: of two concurrent
	// calls with one digest, exactly one reports false.
	Seen(ctx context.Context, digest string, expires time.Time) (bool, error)
}

// MemoryLedger is an in-memory Ledger for tests and single-process tools. It
// forgets everything when the process exits.
type MemoryLedger struct {
	now func() time.Time

	mu        sync.Mutex
	seen      map[string]time.Time
	nextPrune int
}

// NewMemoryLedger returns an empty ledger; now is its clock (time.Now if
// nil), used to drop expired entries.
func NewMemoryLedger(now func() time.Time) *MemoryLedger {
	if now == nil {
		now = time.Now
	}
	return &MemoryLedger{now: now, seen: make(map[string]time.Time), nextPrune: 1024}
}

// Seen implements Ledger.
func (l *MemoryLedger) Seen(_ context.Context, digest string, expires time.Time) (bool, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if exp, ok := l.seen[digest]; ok && now.Before(exp) {
		return true, nil
	}
	l.seen[digest] = expires
	if len(l.seen) >= l.nextPrune {
		for d, exp := range l.seen {
			if !now.Before(exp) {
				delete(l.seen, d)
			}
		}
		l.nextPrune = max(1024, 2*len(l.seen))
	}
	return false, nil
}

// Len returns the number of remembered digests.
func (l *MemoryLedger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Address is the receiving agent's address; payload.to must equal it.
	// Required.
	Address string
	// Ledger records used signatures. Nil means a MemoryLedger, which does
	// not survive restarts; hosts should pass a persistent one.
	Ledger Ledger
	// Window is the accepted clock difference (DefaultWindow if zero).
	Window time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// RequireRecipient rejects payloads without "to". The protocol makes it
	// optional; requiring it stops a signed request for one agent from
	// being replayed to another.
	RequireRecipient bool
	// RequireDigest rejects signed messages that carry session, images or
	// files without a payload "digest" covering them.
	RequireDigest bool
}

// Verifier checks signed messages addressed to one agent: signature (any of
// the SignatureForms), timestamp window, recipient, body digest and single
// use. It is safe for concurrent use.
type Verifier struct {
	self   string
	ledger Ledger
	window time.Duration
	now    func() time.Time
	cfg    VerifierConfig
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	self, err := NormalizeAddress(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	v := &Verifier{self: self, ledger: cfg.Ledger, window: cfg.Window, now: cfg.Now, cfg: cfg}
	if v.now == nil {
		v.now = time.Now
	}
	if v.ledger == nil {
		v.ledger = NewMemoryLedger(v.now)
	}
	if v.window <= 0 {
		v.window = DefaultWindow
	}
	return v, nil
}

// Address returns the agent address this verifier accepts messages for.
func (v *Verifier) Address() string { return v.self }

// Verified is a message whose signature checked out.
type Verified struct {
	// From is the signer's address, in lower case.
	From string
	// Payload is the signed payload as received.
	Payload json.RawMessage
	// Timestamp is payload.timestamp.
	Timestamp time.Time
	// To is payload.to, if present.
	To string
	// Digest is payload.digest, if present (and then checked).
	Digest string
	// Form is the canonical form the signature was made over.
	Form Form
}

// Decode decodes the payload into dst with encoding/json.
func (m *Verified) Decode(dst any) error { return json.Unmarshal(m.Payload, dst) }

// Verify checks a whole signed message as received — a POST /input body,
// a WebSocket CONNECT or ONBOARD_SUBMIT frame: the envelope's signature, the
// payload's timestamp and recipient, the digest of the message's session,
// images and files when the payload carries one, and that the message was
// not used before. A message with none of "payload", "from" and "signature"
// is ErrUnsigned: a plain request, which the caller may treat as anonymous.
// A message with only some of them is ErrMalformed.
func (v *Verifier) Verify(ctx context.Context, raw []byte) (*Verified, error) {
	pe, err := parseSigned(raw)
	if err != nil {
		return nil, err
	}
	m := &Verified{From: AddressOf(pe.pub)}
	p := pe.payload
	ts, err := v.checkTime(p.member("timestamp"), "payload.timestamp")
	if err != nil {
		return nil, err
	}
	m.Timestamp = ts
	if err := v.checkRecipient(p.member("to"), &m.To); err != nil {
		return nil, err
	}
	form, canon, err := checkSignature(pe.pub, pe.sig, p, raw[p.start:p.end])
	if err != nil {
		return nil, err
	}
	m.Form = form
	if err := v.checkDigest(pe.root, p.member("digest"), &m.Digest); err != nil {
		return nil, err
	}
	if err := v.once(ctx, "payload", m.From, canon, ts); err != nil {
		return nil, err
	}
	m.Payload = append(json.RawMessage(nil), raw[p.start:p.end]...)
	return m, nil
}

// VerifyHeaders checks a signed body-less request (GET /sessions…): the
// X-Co-From, X-Co-Signature, X-Co-Timestamp and X-Co-To headers (and
// X-Co-Nonce when sent), the signature being over the canonical JSON of
// {"method", "nonce"?, "path", "timestamp", "to"}. path is the request's URL
// path without the query (r.URL.Path). X-Co-To must be this agent, so
// headers made for another agent are refused, and each signed request is
// accepted once. A request with none of the headers is ErrUnsigned; with
// some of them, ErrMalformed.
func (v *Verifier) VerifyHeaders(ctx context.Context, h http.Header, method, path string) (*Verified, error) {
	from, sigText, tsText := h.Get(HeaderFrom), h.Get(HeaderSignature), h.Get(HeaderTimestamp)
	if from == "" && sigText == "" && tsText == "" {
		return nil, ErrUnsigned
	}
	if from == "" || sigText == "" || tsText == "" {
		return nil, fmt.Errorf("%w: a signed request needs %s, %s, %s and %s", ErrMalformed, HeaderFrom, HeaderSignature, HeaderTimestamp, HeaderTo)
	}
	to := strings.TrimSpace(h.Get(HeaderTo))
	if to == "" {
		return nil, fmt.Errorf("%w: %s required: sign the request for this agent (%s)", ErrWrongRecipient, HeaderTo, v.self)
	}
	if !strings.EqualFold(to, v.self) {
		return nil, fmt.Errorf("%w: this agent is %s", ErrWrongRecipient, v.self)
	}
	pub, err := ParseAddress(strings.TrimSpace(from))
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not an address", ErrMalformed, HeaderFrom)
	}
	sig, err := decodeSignature(strings.TrimSpace(sigText))
	if err != nil {
		return nil, err
	}
	tsInt, err := strconv.ParseInt(strings.TrimSpace(tsText), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: %s must be an integer", ErrMalformed, HeaderTimestamp)
	}
	tsLit := strconv.FormatInt(tsInt, 10)
	ts, err := v.checkTime(&jvalue{kind: jNumber, s: tsLit}, HeaderTimestamp)
	if err != nil {
		return nil, err
	}
	nonce := h.Get(HeaderNonce)
	if len(nonce) > 128 {
		return nil, fmt.Errorf("%w: %s is longer than 128 characters", ErrMalformed, HeaderNonce)
	}
	payload := headerPayload(method, path, tsLit, to, nonce)
	form, canon, err := checkSignature(pub, sig, payload, nil)
	if err != nil {
		return nil, err
	}
	m := &Verified{From: AddressOf(pub), Timestamp: ts, Form: form, To: to}
	if err := v.once(ctx, "headers", m.From, canon, ts); err != nil {
		return nil, err
	}
	m.Payload = canon
	return m, nil
}

// checkTime reads a timestamp (Unix seconds, integer or not) named field and
// checks it against the window.
func (v *Verifier) checkTime(tv *jvalue, field string) (time.Time, error) {
	if tv == nil || tv.kind == jNull {
		return time.Time{}, fmt.Errorf("%w: %s required", ErrMalformed, field)
	}
	if tv.kind != jNumber {
		return time.Time{}, fmt.Errorf("%w: %s must be a number", ErrMalformed, field)
	}
	secs, err := strconv.ParseFloat(tv.s, 64)
	if err != nil || math.IsInf(secs, 0) || math.Abs(secs) > 1e15 {
		return time.Time{}, fmt.Errorf("%w: %s is out of range", ErrExpired, field)
	}
	whole, frac := math.Modf(secs)
	ts := time.Unix(int64(whole), int64(frac*1e9))
	d := v.now().Sub(ts)
	switch {
	case d > v.window:
		return time.Time{}, fmt.Errorf("%w: timestamp is %d s old, the limit is %d s", ErrExpired, int64(d/time.Second), int64(v.window/time.Second))
	case -d > v.window:
		return time.Time{}, fmt.Errorf("%w: timestamp is %d s in the future, the limit is %d s", ErrExpired, int64(-d/time.Second), int64(v.window/time.Second))
	}
	return ts, nil
}

func (v *Verifier) checkRecipient(to *jvalue, out *string) error {
	if to == nil || to.kind == jNull {
		if v.cfg.RequireRecipient {
			return fmt.Errorf("%w: payload.to required", ErrWrongRecipient)
		}
		return nil
	}
	if to.kind != jString {
		return fmt.Errorf("%w: payload.to must be an address", ErrWrongRecipient)
	}
	if !strings.EqualFold(to.s, v.self) {
		return fmt.Errorf("%w: this agent is %s", ErrWrongRecipient, v.self)
	}
	*out = to.s
	return nil
}

// checkSignature verifies sig over each signature form of payload. It returns
// the form that verified and the FormPython encoding, which identifies the
// payload for the replay ledger. raw is the payload as received, if known: a
// form that reproduces it byte for byte is most likely the one signed (a
// client sends what it signed), so it is tried first, which spares a
// JavaScript client's message two failed verifications.
func checkSignature(pub ed25519.PublicKey, sig []byte, payload *jvalue, raw []byte) (Form, []byte, error) {
	var enc [3][]byte
	get := func(i int) []byte {
		if enc[i] == nil {
			enc[i], _ = encodeForm(nil, payload, SignatureForms[i])
		}
		return enc[i]
	}
	order := []int{0, 1, 2}
	if raw != nil && string(get(0)) != string(raw) {
		for i := 1; i < len(order); i++ {
			if string(get(i)) == string(raw) {
				order = []int{i, 0, 3 - i}
				break
			}
		}
	}
	for n, i := range order {
		msg := get(i)
		dup := false
		for _, j := range order[:n] {
			if string(enc[j]) == string(msg) {
				dup = true
				break
			}
		}
		if !dup && ed25519.Verify(pub, msg, sig) {
			return SignatureForms[i], get(0), nil
		}
	}
	return 0, nil, ErrBadSignature
}

func (v *Verifier) checkDigest(root, dv *jvalue, out *string) error {
	outer := make([]*jvalue, len(digestFields))
	present := false
	for i, name := range digestFields {
		outer[i] = root.member(name)
		if outer[i] != nil && outer[i].kind != jNull {
			present = true
		}
	}
	if dv == nil || dv.kind == jNull {
		if v.cfg.RequireDigest && present {
			return fmt.Errorf("%w: payload.digest required to cover session, images and files", ErrDigestMismatch)
		}
		return nil
	}
	if dv.kind != jString || !strings.HasPrefix(strings.ToLower(dv.s), DigestPrefix) {
		return fmt.Errorf("%w: payload.digest must be %q and hex", ErrDigestMismatch, DigestPrefix)
	}
	if !strings.EqualFold(dv.s, digestOf(outer)) {
		return ErrDigestMismatch
	}
	*out = dv.s
	return nil
}

// once records a verified message in the ledger.
func (v *Verifier) once(ctx context.Context, kind, from string, canon []byte, ts time.Time) error {
	h := sha256.New()
	h.Write([]byte("agenthost/replay/" + kind + "\x00" + from + "\x00"))
	h.Write(canon)
	digest := hex.EncodeToString(h.Sum(nil))
	seen, err := v.ledger.Seen(ctx, digest, ts.Add(v.window+time.Second))
	if err != nil {
		return fmt.Errorf("replay ledger: %w", err)
	}
	if seen {
		return ErrReplay
	}
	return nil
}
