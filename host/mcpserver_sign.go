package host

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/agenthost/agenthost/trust"
)

// A signed MCP request is an HTTP request to /mcp with trust's signed
// headers (trust.SignHeaders: X-Co-From, X-Co-Signature, X-Co-Timestamp,
// X-Co-To, X-Co-Nonce) whose signed path is MCPSignedPath of the request's
// body. The signature thus covers the exact bytes of the JSON-RPC messages
// the host runs, names the agent, and is accepted once (the host's replay
// ledger); an altered body, another agent or a replay is refused with 401.

// MCPSignedPath is the path a signed MCP request signs in place of its URL
// path: "/mcp#sha256=" and the hex SHA-256 of the body's exact bytes
// (empty for GET and DELETE).
func MCPSignedPath(body []byte) string {
	sum := sha256.Sum256(body)
	return MCPPath + "#sha256=" + hex.EncodeToString(sum[:])
}

// SignMCPRequest signs r, a request to the /mcp endpoint of the agent
// whose address is to, with id at time now: it reads r's body, puts it
// back, and sets the signed headers.
func SignMCPRequest(id *trust.Identity, to string, r *http.Request, now time.Time) error {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return fmt.Errorf("signing an MCP request: %w", err)
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	for k, v := range trust.SignHeaders(id, r.Method, MCPSignedPath(body), to, now) {
		r.Header[k] = v
	}
	return nil
}

// MCPSigner is an http.RoundTripper that signs every request it carries
// with SignMCPRequest: give it to an MCP client's Streamable HTTP
// transport (the Go SDK's mcp.StreamableClientTransport.HTTPClient) to call
// an agent's /mcp as Identity.
type MCPSigner struct {
	// Identity signs; To is the agent's address (GET /info's address).
	Identity *trust.Identity
	To       string
	// Base carries the signed request; nil is http.DefaultTransport.
	Base http.RoundTripper
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// RoundTrip implements http.RoundTripper.
func (s *MCPSigner) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.Identity == nil || s.To == "" {
		return nil, errors.New("MCPSigner: needs an Identity and the agent's address (To)")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	r = r.Clone(r.Context())
	if err := SignMCPRequest(s.Identity, s.To, r, now()); err != nil {
		return nil, err
	}
	base := s.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
