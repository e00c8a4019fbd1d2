package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/platform/store/sqlite"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func seqID() func() string {
	var n atomic.Int64
	return func() string { return fmt.Sprintf("id%d", n.Add(1)) }
}

func TestGenerateParse(t *testing.T) {
	tok, hash := Generate()
	if !strings.HasPrefix(tok, Prefix) || len(tok) != len(Prefix)+52 {
		t.Fatalf("token %q: want %s + 52 characters", tok, Prefix)
	}
	want := sha256.Sum256([]byte(tok[len(Prefix):]))
	if !bytes.Equal(hash, want[:]) {
		t.Fatal("hash is not the SHA-256 of the secret part")
	}
	got, err := Parse(tok)
	if err != nil || !bytes.Equal(got, hash) {
		t.Fatalf("Parse = %x, %v", got, err)
	}
	got, err = Parse(SeedPrefix + tok[len(Prefix):])
	if err != nil || !bytes.Equal(got, hash) {
		t.Fatalf("the seed's prefix must be accepted: %x, %v", got, err)
	}
	for _, bad := range []string{"", Prefix, "xx_live_abc", tok[len(Prefix):], Prefix + "UPPER", Prefix + "a b", Prefix + strings.Repeat("a", 300)} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if tok2, _ := Generate(); tok2 == tok {
		t.Fatal("two tokens are equal")
	}
}

func TestFromHeader(t *testing.T) {
	for h, want := range map[string]string{"Bearer abc": "abc", "bearer abc": "abc", "  BEARER   abc  ": "abc"} {
		if got, err := FromHeader(h); err != nil || got != want {
			t.Errorf("FromHeader(%q) = %q, %v", h, got, err)
		}
	}
	for h, want := range map[string]error{"": ErrMissing, "   ": ErrMissing, "Bearer ": ErrMissing, "Basic abc": ErrInvalid, "abc": ErrInvalid} {
		if _, err := FromHeader(h); !errors.Is(err, want) {
			t.Errorf("FromHeader(%q) = %v, want %v", h, err, want)
		}
	}
}

func FuzzAuthorizationHeader(f *testing.F) {
	tok, _ := Generate()
	f.Add("Bearer " + tok)
	f.Add("bearer " + SeedPrefix + "abc")
	f.Add("Basic dXNlcjpwYXNz")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		raw, err := FromHeader(h)
		if err != nil {
			if !errors.Is(err, ErrMissing) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("FromHeader(%q): unexpected error %v", h, err)
			}
			return
		}
		hash, err := Parse(raw)
		if err == nil && len(hash) != sha256.Size {
			t.Fatalf("Parse(%q) hash of %d bytes", raw, len(hash))
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("Parse(%q): unexpected error %v", raw, err)
		}
	})
}

func TestIssueListRevoke(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	now := time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)
	newID := seqID()
	plain, tok, org, err := Issue(ctx, st, "acme", "production", now, newID)
	if err != nil {
		t.Fatal(err)
	}
	if org.Name != "acme" || tok.OrgID != org.ID || tok.Label != "production" {
		t.Fatalf("Issue = %+v, %+v", tok, org)
	}
	// The plaintext is nowhere in the database.
	stored, _ := st.ListTokens(ctx, org.ID)
	if len(stored) != 1 || bytes.Contains(stored[0].Hash, []byte(plain)) || !bytes.Equal(stored[0].Hash, Hash(plain[len(Prefix):])) {
		t.Fatalf("stored token = %+v", stored)
	}
	_, tok2, org2, err := Issue(ctx, st, "acme", "ci", now, newID)
	if err != nil || org2.ID != org.ID {
		t.Fatalf("second Issue for the same org: %+v, %v", org2, err)
	}
	if _, _, _, err := Issue(ctx, st, " ", "x", now, newID); err == nil {
		t.Fatal("an empty organization name must be refused")
	}
	list, err := List(ctx, st, "acme")
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if _, err := List(ctx, st, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("List of a missing org: %v", err)
	}

	a := NewAuthenticator(st, func() time.Time { return now }, time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got, err := a.Authenticate(ctx, "Bearer "+plain); err != nil || got.ID != tok.ID {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	if err := Revoke(ctx, st, "acme", tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "Bearer "+plain); !errors.Is(err, ErrInvalid) {
		t.Fatalf("revoked token: %v, want ErrInvalid", err)
	}
	if err := Revoke(ctx, st, "acme", tok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
	if err := Revoke(ctx, st, "nobody", tok2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking through another org: %v", err)
	}
}

// countingStore counts TouchToken calls.
type countingStore struct {
	store.Store
	touches atomic.Int32
}

func (c *countingStore) TouchToken(ctx context.Context, id string, at time.Time) error {
	c.touches.Add(1)
	return c.Store.TouchToken(ctx, id, at)
}

func TestLastUsedThrottled(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Store: openStore(t)}
	now := time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)
	plain, tok, org, err := Issue(ctx, st, "acme", "p", now, seqID())
	if err != nil {
		t.Fatal(err)
	}
	clock := now
	a := NewAuthenticator(st, func() time.Time { return clock }, time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 10 {
		clock = now.Add(time.Duration(i) * time.Second)
		if _, err := a.Authenticate(ctx, "Bearer "+plain); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.touches.Load(); n != 1 {
		t.Fatalf("%d writes for 10 uses within a minute, want 1", n)
	}
	clock = now.Add(2 * time.Minute)
	a.Authenticate(ctx, "Bearer "+plain)
	if n := st.touches.Load(); n != 2 {
		t.Fatalf("%d writes after a minute, want 2", n)
	}
	list, _ := st.ListTokens(ctx, org.ID)
	if len(list) != 1 || list[0].ID != tok.ID || !list[0].LastUsedAt.Equal(clock) {
		t.Fatalf("last used = %+v, want %v", list, clock)
	}
	for _, h := range []string{"", "Bearer nope", "Bearer " + Prefix + "aaaa"} {
		if _, err := a.Authenticate(ctx, h); !errors.Is(err, ErrMissing) && !errors.Is(err, ErrInvalid) {
			t.Errorf("Authenticate(%q) = %v", h, err)
		}
	}
}
