package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agenthost/agenthost/internal/httpjson"
	"io"
	"net/http"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/agenthost/agenthost/internal/version"
	"github.com/agenthost/agenthost/trust"
)

// A2A (Agent2Agent) is one more front end over the session engine: the
// Agent Card at /.well-known/agent-card.json and the JSON-RPC binding at
// /a2a (docs/a2a.md). github.com/a2aproject/a2a-go speaks the wire
// protocol (JSON-RPC framing, SSE, the types); this file admits callers
// and a2atasks.go maps tasks and contexts onto the host's runs and
// sessions.

// Paths of the A2A front end.
const (
	// A2AAgentCardPath is where the Agent Card is published (the A2A
	// well-known path).
	A2AAgentCardPath = "/.well-known/agent-card.json"
	// A2APath is the JSON-RPC endpoint, the card's url.
	A2APath = "/a2a"
)

// A2ASignedExtension is the URI of the A2A extension by which a caller
// signs its requests with its agenthost identity (docs/a2a.md "Signed
// requests"). The card declares it; the signature travels in the
// A2AEnvelopeHeader header.
const A2ASignedExtension = "https://github.com/agenthost/agenthost/blob/main/docs/a2a.md#signed-requests"

// A2AEnvelopeHeader carries a signed request's envelope: the JSON object
// {"payload": {...}, "from": "0x…", "signature": "…"} of docs/protocol.md
// §1, whose payload is {"a2a_body": <hex SHA-256 of the exact request
// body>, "to": <this agent's address>, "timestamp": <Unix seconds>,
// "nonce": <random>} in our canonical JSON. The signature covers the
// whole body byte for byte, so nothing in it can change unsigned.
const A2AEnvelopeHeader = "X-Co-A2A-Envelope"

// a2aSchemeName is the security scheme the card declares for signed
// callers.
const a2aSchemeName = "agenthostSignature"

// a2aProtocolVersion is the A2A protocol version a2a-go v0.3 speaks.
const a2aProtocolVersion = "0.3.0"

// a2aBaseURL is the host's absolute URL as the card names it: the
// host's public_url when set, else the scheme and host the request used.
func (s *Server) a2aBaseURL(r *http.Request) string {
	if u := strings.TrimRight(s.current().cfg.PublicURL, "/"); u != "" {
		return u
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// agentCard is this agent's A2A Agent Card.
func (s *Server) agentCard(r *http.Request) *a2a.AgentCard {
	rt := s.current()
	cfg := rt.cfg
	desc := cfg.Summary
	if desc == "" {
		desc = "An agent hosted by agenthost (" + rt.name + ")."
	}
	skills := []a2a.AgentSkill{{
		ID: "chat", Name: rt.name, Description: desc, Examples: cfg.Examples, Tags: []string{"chat"},
	}}
	for _, t := range rt.tools {
		d := rt.toolDescription(t)
		if d == "" {
			d = "The agent's " + t + " tool."
		}
		skills = append(skills, a2a.AgentSkill{ID: "tool:" + t, Name: t, Description: d, Tags: []string{"tool"}})
	}
	signed := a2a.AgentExtension{
		URI: A2ASignedExtension,
		Description: "Requests signed with an agenthost identity (Ed25519): send the envelope in the " + A2AEnvelopeHeader +
			" header; its payload covers the SHA-256 of the exact body, this agent's address and the time.",
		Required: cfg.Trust == TrustStrict,
		Params:   map[string]any{"header": A2AEnvelopeHeader, "address": s.id.Address(), "trust": cfg.Trust},
	}
	card := &a2a.AgentCard{
		Name:               rt.name,
		Description:        desc,
		URL:                s.a2aBaseURL(r) + A2APath,
		PreferredTransport: a2a.TransportProtocolJSONRPC,
		ProtocolVersion:    a2aProtocolVersion,
		Version:            version.String(),
		DocumentationURL:   s.a2aBaseURL(r) + "/docs",
		Capabilities:       a2a.AgentCapabilities{Streaming: true, Extensions: []a2a.AgentExtension{signed}},
		DefaultInputModes:  []string{"text/plain", "application/json", "image/*", "application/octet-stream"},
		DefaultOutputModes: []string{"text/plain"},
		Skills:             skills,
		SecuritySchemes: a2a.NamedSecuritySchemes{
			a2aSchemeName: a2a.APIKeySecurityScheme{In: a2a.APIKeySecuritySchemeInHeader, Name: A2AEnvelopeHeader,
				Description: "agenthost signed-request envelope (extension " + A2ASignedExtension + ")"},
		},
	}
	if cfg.Trust == TrustStrict {
		card.Security = []a2a.SecurityRequirements{{a2aSchemeName: a2a.SecuritySchemeScopes{}}}
	}
	return card
}

// serveAgentCard answers GET /.well-known/agent-card.json.
func (s *Server) serveAgentCard(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.agentCard(r))
	return nil
}

// a2aCallerKey carries the admitted caller to the task handler.
type a2aCallerKey struct{}

// a2aCall is what the HTTP layer admitted: the caller and its address for
// uploads.
type a2aCall struct {
	caller Caller
	remote string
}

func a2aCallFrom(ctx context.Context) (a2aCall, bool) {
	c, ok := ctx.Value(a2aCallerKey{}).(a2aCall)
	return c, ok
}

// serveA2A admits a JSON-RPC request through the gate — signed by the
// A2A signing extension or anonymous — and hands it to a2a-go's JSON-RPC
// binding over the host's task handler.
func (s *Server) serveA2A(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		a2aHTTPError(w, http.StatusMethodNotAllowed, a2a.ErrInvalidRequest, "method "+r.Method+" not allowed; send JSON-RPC with POST")
		return
	}
	call, body, err := s.admitA2A(w, r)
	if err != nil {
		status, msg, _ := classify(err)
		if status == 499 {
			return
		}
		code := a2a.ErrInvalidRequest
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			w.Header().Set("WWW-Authenticate", `AgenthostSignature header="`+A2AEnvelopeHeader+`"`)
		}
		a2aHTTPError(w, status, code, msg)
		return
	}
	ctx := context.WithValue(r.Context(), a2aCallerKey{}, call)
	r2 := r.WithContext(ctx)
	r2.Body = io.NopCloser(bytes.NewReader(body))
	if strings.Contains(r.Header.Get(a2asrv.ExtensionsMetaKey), A2ASignedExtension) && call.caller.Payload != nil {
		w.Header().Set(a2asrv.ExtensionsMetaKey, A2ASignedExtension)
	}
	// a2a-go's SSE writer wants an http.Flusher; middleware around the
	// host may wrap w in a writer that flushes only through
	// http.ResponseController.
	a2asrv.NewJSONRPCHandler(&a2aTasks{s: s}).ServeHTTP(httpjson.JSONWriter{ResponseWriter: w}, r2)
}

// a2aHTTPError answers a request refused before JSON-RPC dispatch: the
// HTTP status says why, the body is a JSON-RPC error.
func a2aHTTPError(w http.ResponseWriter, status int, kind error, msg string) {
	code := -32600
	if errors.Is(kind, a2a.ErrParseError) {
		code = -32700
	}
	writeJSON(w, status, map[string]any{"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": code, "message": msg}})
}

// admitA2A reads the body within the upload limits, refuses ambiguous
// member names, verifies a signed request's envelope against the exact
// body, and asks the gate.
func (s *Server) admitA2A(w http.ResponseWriter, r *http.Request) (a2aCall, []byte, error) {
	rt := s.current()
	limit := maxInputBody(rt.cfg)
	if !s.preAdmit(r, "http") {
		limit = PreAdmitLimit
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		return a2aCall{}, nil, err
	}
	if err := checkA2AKeys(body); err != nil {
		return a2aCall{}, nil, err
	}
	req := &Request{Transport: "http", Method: r.Method, Path: r.URL.Path, Header: r.Header, RemoteAddr: r.RemoteAddr}
	envText := r.Header.Get(A2AEnvelopeHeader)
	if r.Header.Get(trust.HeaderSignature) != "" {
		return a2aCall{}, nil, unauthorized("signed headers (" + trust.HeaderSignature + ") cover only body-less requests; sign A2A requests with the " + A2AEnvelopeHeader + " envelope (docs/a2a.md)")
	}
	if envText != "" {
		env, err := trust.ParseEnvelope([]byte(envText))
		if err != nil {
			return a2aCall{}, nil, unauthorized(A2AEnvelopeHeader + ": " + err.Error())
		}
		// Checked before the gate so that a tampered body does not use
		// up the signature in the replay ledger.
		if err := s.checkA2APayload(env.Payload, body); err != nil {
			return a2aCall{}, nil, err
		}
		req.Body = []byte(envText)
		req.Payload, req.From, req.Signature = env.Payload, env.From, env.Signature
	}
	caller, err := rt.gate.Admit(r.Context(), req)
	if err != nil {
		return a2aCall{}, nil, err
	}
	if caller.Payload != nil {
		// What the gate verified is what runs.
		if err := s.checkA2APayload(caller.Payload, body); err != nil {
			return a2aCall{}, nil, err
		}
	}
	return a2aCall{caller: caller, remote: r.RemoteAddr}, body, nil
}

// a2aPayload is the signed payload of an A2A request.
type a2aPayload struct {
	Body string `json:"a2a_body"`
	To   string `json:"to"`
}

// checkA2APayload checks that a signed payload covers this body and names
// this agent (whatever the legacy setting: an A2A signature is never valid
// at another agent).
func (s *Server) checkA2APayload(payload json.RawMessage, body []byte) error {
	if err := checkA2AKeys(payload); err != nil {
		return unauthorized(A2AEnvelopeHeader + ": payload: " + err.Error())
	}
	var p a2aPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return unauthorized(A2AEnvelopeHeader + ": payload must be an object")
	}
	if p.Body == "" {
		return unauthorized(A2AEnvelopeHeader + ": payload.a2a_body required: sign the SHA-256 of the exact request body")
	}
	sum := sha256.Sum256(body)
	if !strings.EqualFold(p.Body, hex.EncodeToString(sum[:])) {
		return unauthorized("the request body differs from what the signature covers (payload.a2a_body)")
	}
	if !strings.EqualFold(p.To, s.id.Address()) {
		return unauthorized(fmt.Sprintf("the signature is for another agent: payload.to must be %s", s.id.Address()))
	}
	return nil
}

// checkA2AKeys refuses a JSON value holding an object with two member
// names that encoding/json would take for one ("message" and "Message",
// or one name twice): a decoder could then run a member that a reader of
// the body (a log, a proxy, the signer's own tools) never saw. Unlike
// checkKeys it knows no vocabulary: A2A bodies carry metadata of any
// shape, and no object in them needs two such names.
func checkA2AKeys(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf(http.StatusBadRequest, "request body is empty; send a JSON-RPC request")
	}
	return walkBody(body, foldedSpec)
}
