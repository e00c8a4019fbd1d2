// Package auth is the platform's API tokens: their format, issuing, listing
// and revoking them (the `agenthost platform token` commands), and checking
// the Bearer token of each request.
//
// A token is "ah_live_" followed by 52 base32 characters (256 random bits).
// Only the SHA-256 of the part after the prefix is stored: a token this
// strong needs no slow hash, and a copy of the database grants nothing. The
// seed's documentation shows the prefix "ha_live_"; both prefixes are
// accepted on input, so a client written against the seed that checks or
// rewrites the prefix still works.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/internal/platform/store"
)

// Prefix starts every token the platform issues.
const Prefix = "ah_live_"

// SeedPrefix is the prefix the seed's documentation shows; accepted too.
const SeedPrefix = "ha_live_"

// maxTokenLen bounds what is hashed from a request header.
const maxTokenLen = 256

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// Errors of Authenticate; both are 401 to the client.
var (
	ErrMissing = errors.New("missing API token: send Authorization: Bearer <token>")
	ErrInvalid = errors.New("invalid API token")
)

// Generate returns a new token and the hash to store for it.
func Generate() (token string, hash []byte) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("auth: crypto/rand failed: " + err.Error())
	}
	secret := strings.ToLower(enc.EncodeToString(b))
	return Prefix + secret, Hash(secret)
}

// Hash is the stored form of a token's secret part.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Parse returns the hash of a token as a client sent it, or ErrInvalid when
// it does not have a token's shape.
func Parse(token string) ([]byte, error) {
	var secret string
	switch {
	case strings.HasPrefix(token, Prefix):
		secret = token[len(Prefix):]
	case strings.HasPrefix(token, SeedPrefix):
		secret = token[len(SeedPrefix):]
	default:
		return nil, ErrInvalid
	}
	if secret == "" || len(token) > maxTokenLen {
		return nil, ErrInvalid
	}
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return nil, ErrInvalid
		}
	}
	return Hash(secret), nil
}

// FromHeader extracts the token from an Authorization header value
// ("Bearer <token>", scheme case-insensitive).
func FromHeader(h string) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" || strings.EqualFold(h, "Bearer") {
		return "", ErrMissing
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrInvalid
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", ErrMissing
	}
	return tok, nil
}

// Issue creates a token for the organization named orgName, creating the
// organization on first use. The token is returned once; only its hash is
// kept.
func Issue(ctx context.Context, st store.Store, orgName, label string, now time.Time, newID func() string) (string, store.Token, store.Org, error) {
	if strings.TrimSpace(orgName) == "" {
		return "", store.Token{}, store.Org{}, errors.New("an organization name is required")
	}
	org, err := st.OrgByName(ctx, orgName)
	if errors.Is(err, store.ErrNotFound) {
		org = store.Org{ID: newID(), Name: orgName, CreatedAt: now}
		err = st.CreateOrg(ctx, org)
		if errors.Is(err, store.ErrConflict) { // created concurrently
			org, err = st.OrgByName(ctx, orgName)
		}
	}
	if err != nil {
		return "", store.Token{}, store.Org{}, fmt.Errorf("organization %q: %w", orgName, err)
	}
	plain, hash := Generate()
	tok := store.Token{ID: newID(), OrgID: org.ID, Label: label, Hash: hash, CreatedAt: now}
	if err := st.CreateToken(ctx, tok); err != nil {
		return "", store.Token{}, store.Org{}, fmt.Errorf("creating token: %w", err)
	}
	return plain, tok, org, nil
}

// List lists an organization's tokens (never their secrets).
func List(ctx context.Context, st store.Store, orgName string) ([]store.Token, error) {
	org, err := orgByName(ctx, st, orgName)
	if err != nil {
		return nil, err
	}
	return st.ListTokens(ctx, org.ID)
}

// Revoke deletes a token of an organization by id; it stops working at
// once.
func Revoke(ctx context.Context, st store.Store, orgName, tokenID string) error {
	org, err := orgByName(ctx, st, orgName)
	if err != nil {
		return err
	}
	if err := st.DeleteToken(ctx, org.ID, tokenID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("token %q of organization %q: %w", tokenID, orgName, store.ErrNotFound)
		}
		return err
	}
	return nil
}

func orgByName(ctx context.Context, st store.Store, name string) (store.Org, error) {
	org, err := st.OrgByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return org, fmt.Errorf("organization %q: %w", name, store.ErrNotFound)
	}
	return org, err
}

// Authenticator checks request tokens and records when each was last used,
// writing at most once per TouchEvery per token so a busy client does not
// turn every request into a database write.
type Authenticator struct {
	st         store.Store
	now        func() time.Time
	touchEvery time.Duration
	log        *slog.Logger

	mu      sync.Mutex
	touched map[string]time.Time // token id → last recorded use
}

// NewAuthenticator returns an Authenticator. touchEvery <= 0 records every
// use.
func NewAuthenticator(st store.Store, now func() time.Time, touchEvery time.Duration, log *slog.Logger) *Authenticator {
	return &Authenticator{st: st, now: now, touchEvery: touchEvery, log: log, touched: map[string]time.Time{}}
}

// Authenticate returns the token named by an Authorization header value.
// Errors wrap ErrMissing or ErrInvalid, or are the store's.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (store.Token, error) {
	raw, err := FromHeader(header)
	if err != nil {
		return store.Token{}, err
	}
	hash, err := Parse(raw)
	if err != nil {
		return store.Token{}, err
	}
	tok, err := a.st.TokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, ErrInvalid
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("looking up token: %w", err)
	}
	a.touch(ctx, tok)
	return tok, nil
}

func (a *Authenticator) touch(ctx context.Context, tok store.Token) {
	now := a.now()
	a.mu.Lock()
	last, ok := a.touched[tok.ID]
	if !ok {
		last = tok.LastUsedAt
	}
	due := now.Sub(last) >= a.touchEvery || last.IsZero()
	if due {
		a.touched[tok.ID] = now
	}
	a.mu.Unlock()
	if !due {
		return
	}
	if err := a.st.TouchToken(ctx, tok.ID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.log.Warn("recording token use", "token", tok.ID, "err", err)
	}
}
