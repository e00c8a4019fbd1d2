package host

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/agenthost/agenthost/trust"
)

// SignA2A signs an A2A JSON-RPC request body for the agent whose address
// is to, as the A2A signing extension (A2ASignedExtension) defines: the
// payload {"a2a_body": hex SHA-256 of body, "to", "timestamp", "nonce"}
// in canonical JSON, signed with id. It returns the value of the
// A2AEnvelopeHeader header. Send body exactly as signed: one changed byte
// and the agent refuses the request; each signature is accepted once.
func SignA2A(id *trust.Identity, to string, now time.Time, body []byte) (string, error) {
	if id == nil {
		return "", errors.New("a2a signing: no identity")
	}
	sum := sha256.Sum256(body)
	var nonce [12]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("a2a signing: %w", err)
	}
	env, err := trust.Sign(id, trust.NewPayload(to, now, map[string]any{
		"a2a_body": hex.EncodeToString(sum[:]),
		"nonce":    hex.EncodeToString(nonce[:]),
	}))
	if err != nil {
		return "", fmt.Errorf("a2a signing: %w", err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("a2a signing: %w", err)
	}
	return string(b), nil
}

// A2ASigner is an http.RoundTripper that signs every POST it carries for
// the agent at address to (SignA2A) and declares the extension in
// X-A2A-Extensions. Give it to an A2A client's HTTP client (a2a-go:
// a2aclient.WithJSONRPCTransport(&http.Client{Transport: signer})) to call
// an agent whose trust level wants signed callers. Next nil means
// http.DefaultTransport; Now nil means time.Now.
type A2ASigner struct {
	ID   *trust.Identity
	To   string
	Next http.RoundTripper
	Now  func() time.Time
}

// RoundTrip implements http.RoundTripper.
func (s *A2ASigner) RoundTrip(r *http.Request) (*http.Response, error) {
	next := s.Next
	if next == nil {
		next = http.DefaultTransport
	}
	if r.Method != http.MethodPost || r.Body == nil {
		return next.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("a2a signing: reading the body: %w", err)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	env, err := SignA2A(s.ID, s.To, now(), body)
	if err != nil {
		return nil, err
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r2.Header.Set(A2AEnvelopeHeader, env)
	r2.Header.Add("X-A2A-Extensions", A2ASignedExtension)
	return next.RoundTrip(r2)
}
