package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agenthost/agenthost/trust"
)

// DefaultClockSkew is how far an ANNOUNCE timestamp may lie from the
// relay's clock, either way: the same window as signed requests.
const DefaultClockSkew = 300 * time.Second

// Announce is a verified ANNOUNCE: what an agent says about itself.
type Announce struct {
	// Address is the agent's address, lower case; the signer.
	Address string
	// Timestamp is when the agent signed, in Unix seconds.
	Timestamp int64
	// Summary describes what the agent does (≤ MaxSummaryChars).
	Summary string
	// Endpoints are URLs where the agent may be reached directly.
	Endpoints []string
	// Relay is the relay URL the agent announced itself through, if any.
	Relay string
	// Profile is the agent's published profile object (alias, tools,
	// model, examples, …) as sent, or nil.
	Profile json.RawMessage
	// Signature is the hex signature, as sent.
	Signature string
}

// Profile is what a host publishes about its agent in an ANNOUNCE. The
// relay indexes its tools, examples and skills for discovery.
type Profile struct {
	Alias    string   `json:"alias,omitempty"`
	Tools    []string `json:"tools,omitempty"`
	Model    string   `json:"model,omitempty"`
	Examples []string `json:"examples,omitempty"`
	Skills   []Skill  `json:"skills,omitempty"`
}

// Skill is a named capability listed in a Profile.
type Skill struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// AnnounceError is why an ANNOUNCE was refused. Reason is a short stable
// word for metrics; Error() is the message sent back to the agent.
type AnnounceError struct {
	Reason string
	Msg    string
}

func (e *AnnounceError) Error() string { return e.Msg }

// Refusal reasons of AnnounceError.
const (
	ReasonMalformed    = "malformed"
	ReasonAddress      = "bad_address"
	ReasonSignature    = "bad_signature"
	ReasonStale        = "stale_timestamp"
	ReasonSummary      = "summary_too_long"
	ReasonInvalidField = "invalid_field"
	ReasonTooLarge     = "too_large"
)

func refuse(reason, format string, args ...any) error {
	return &AnnounceError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// announceWire is an ANNOUNCE as JSON. Pointers tell absent from empty where
// it matters.
type announceWire struct {
	Type      string          `json:"type"`
	Address   *string         `json:"address"`
	Timestamp json.RawMessage `json:"timestamp"`
	Summary   *string         `json:"summary"`
	Endpoints []string        `json:"endpoints"`
	Relay     *string         `json:"relay"`
	Profile   json.RawMessage `json:"profile"`
	Signature *string         `json:"signature"`
}

// VerifyAnnounce checks an ANNOUNCE frame: its address is the key that
// signed the relay canonical form of the message without "signature"
// (trust.VerifyAnnounce), its timestamp lies within skew of now, and its
// fields are within the relay's limits. It is pure: replay and freshness
// against earlier announces are the relay's to judge (see relayserver).
func VerifyAnnounce(frame []byte, now time.Time, skew time.Duration) (*Announce, error) {
	if len(frame) > MaxAnnounceSize {
		return nil, refuse(ReasonTooLarge, "ANNOUNCE is %d bytes (max %d)", len(frame), MaxAnnounceSize)
	}
	var w announceWire
	if err := json.Unmarshal(frame, &w); err != nil {
		return nil, refuse(ReasonMalformed, "malformed ANNOUNCE: %v", err)
	}
	if w.Type != TypeAnnounce {
		return nil, refuse(ReasonMalformed, "expected an ANNOUNCE frame, got type %q", clip(w.Type, 40))
	}
	addr, err := trust.VerifyAnnounce(frame, now, skew)
	switch {
	case errors.Is(err, trust.ErrExpired):
		return nil, refuse(ReasonStale, "stale ANNOUNCE: %v", err)
	case errors.Is(err, trust.ErrBadSignature), errors.Is(err, trust.ErrUnsigned):
		return nil, refuse(ReasonSignature, "Invalid signature: %v", err)
	case err != nil:
		return nil, refuse(ReasonMalformed, "malformed ANNOUNCE: %v", err)
	}
	ts, err := strconv.ParseInt(string(w.Timestamp), 10, 64)
	if err != nil {
		return nil, refuse(ReasonInvalidField, "timestamp must be an integer number of seconds")
	}
	a := &Announce{Address: addr, Timestamp: ts}
	if w.Signature != nil {
		a.Signature = *w.Signature
	}
	if w.Summary != nil {
		a.Summary = *w.Summary
	}
	if n := utf8.RuneCountInString(a.Summary); n > MaxSummaryChars {
		return nil, refuse(ReasonSummary, "Summary too long (max %d chars)", MaxSummaryChars)
	}
	if len(w.Endpoints) > MaxEndpoints {
		return nil, refuse(ReasonInvalidField, "too many endpoints (max %d)", MaxEndpoints)
	}
	for _, e := range w.Endpoints {
		if len(e) == 0 || len(e) > MaxEndpointLen || strings.ContainsFunc(e, isControl) {
			return nil, refuse(ReasonInvalidField, "invalid endpoint %q", clip(e, 60))
		}
	}
	a.Endpoints = w.Endpoints
	if a.Endpoints == nil {
		a.Endpoints = []string{}
	}
	if w.Relay != nil {
		if len(*w.Relay) > MaxEndpointLen || strings.ContainsFunc(*w.Relay, isControl) {
			return nil, refuse(ReasonInvalidField, "invalid relay URL")
		}
		a.Relay = *w.Relay
	}
	if p := bytes.TrimSpace(w.Profile); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		if p[0] != '{' {
			return nil, refuse(ReasonInvalidField, "profile must be an object")
		}
		a.Profile = json.RawMessage(bytes.Clone(p))
	}
	return a, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// AnnounceInfo is what an agent announces about itself.
type AnnounceInfo struct {
	// Summary says what the agent does; longer than MaxSummaryChars is cut.
	Summary string
	// Endpoints are URLs where the agent can be reached directly, e.g.
	// "http://192.168.1.5:8000" and "ws://192.168.1.5:8000/ws".
	Endpoints []string
	// Profile is published for discovery; nil leaves it out.
	Profile *Profile
}

// BuildAnnounce returns a signed ANNOUNCE frame for id at time now, naming
// relayBase as the agent's relay (trust.SignAnnounce: the signature covers
// the relay canonical form of every field but "signature").
func BuildAnnounce(id *trust.Identity, info AnnounceInfo, relayBase string, now time.Time) ([]byte, error) {
	if id == nil {
		return nil, errors.New("relay: announce needs an identity")
	}
	summary := info.Summary
	if utf8.RuneCountInString(summary) > MaxSummaryChars {
		summary = string([]rune(summary)[:MaxSummaryChars])
	}
	endpoints := info.Endpoints
	if endpoints == nil {
		endpoints = []string{}
	}
	msg := map[string]any{
		"type":      TypeAnnounce,
		"address":   id.Address(),
		"timestamp": now.Unix(),
		"summary":   summary,
		"endpoints": endpoints,
		"relay":     relayBase,
	}
	if relayBase == "" {
		msg["relay"] = nil
	}
	if info.Profile != nil {
		msg["profile"] = info.Profile
	}
	frame, err := trust.SignAnnounce(id, msg)
	if err != nil {
		return nil, fmt.Errorf("relay: signing ANNOUNCE: %w", err)
	}
	if len(frame) > MaxAnnounceSize {
		return nil, fmt.Errorf("relay: ANNOUNCE is %d bytes, over the relay's %d: %w", len(frame), MaxAnnounceSize, ErrFrameTooLarge)
	}
	return frame, nil
}

// NormalizeRelayURL returns the base URL of a relay given either as a base
// ("wss://relay.example") or with an endpoint path ("…/ws/announce",
// "…/ws/input", "…/ws"), as host.yaml's relay_url may hold either. http and
// https become ws and wss.
func NormalizeRelayURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("relay URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("relay URL %q: scheme must be ws, wss, http or https", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("relay URL %q: no host", raw)
	}
	p := strings.TrimRight(u.Path, "/")
	for _, suffix := range []string{"/ws/announce", "/ws/input", "/ws"} {
		if strings.HasSuffix(p, suffix) {
			p = strings.TrimSuffix(p, suffix)
			break
		}
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = p, "", "", ""
	return u.String(), nil
}

// HTTPBase returns the http(s) form of a relay base URL, for its REST API.
func HTTPBase(relayBase string) string {
	switch {
	case strings.HasPrefix(relayBase, "wss://"):
		return "https://" + strings.TrimPrefix(relayBase, "wss://")
	case strings.HasPrefix(relayBase, "ws://"):
		return "http://" + strings.TrimPrefix(relayBase, "ws://")
	}
	return relayBase
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
