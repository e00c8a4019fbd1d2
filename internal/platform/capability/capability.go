// Package capability mints and checks session capabilities: the unguessable
// token in a session page's URL that grants that one session of that one
// agent and nothing else.
//
// A capability is HMAC-SHA256 over the agent and session ids under a key
// derived from the platform's master key, so it needs no storage, works on
// every replica sharing the key, and stops working when the agent is
// deleted (there is nothing left to grant).
package capability

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// derivation labels the key derived from the master key, so a capability
// is never a valid MAC for any other use of that key.
const derivation = "agenthost session capability v1"

// Signer mints and checks capabilities.
type Signer struct{ key []byte }

// New derives a Signer from the platform's master key.
func New(masterKey []byte) *Signer {
	m := hmac.New(sha256.New, masterKey)
	m.Write([]byte(derivation))
	return &Signer{key: m.Sum(nil)}
}

func (s *Signer) mac(agentID, sessionID string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(agentID))
	m.Write([]byte{0})
	m.Write([]byte(sessionID))
	return m.Sum(nil)
}

// Mint returns the capability for one session of one agent: 43 URL-safe
// characters (256 bits).
func (s *Signer) Mint(agentID, sessionID string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(agentID, sessionID))
}

// Check reports, in constant time, whether capability grants the session.
func (s *Signer) Check(agentID, sessionID, capability string) bool {
	got, err := base64.RawURLEncoding.DecodeString(capability)
	if err != nil || len(got) != sha256.Size || agentID == "" || sessionID == "" {
		return false
	}
	return hmac.Equal(got, s.mac(agentID, sessionID))
}
