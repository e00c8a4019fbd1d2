package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/store/sqlite"

	"github.com/agenthost/agenthost/trust/policy"
)

const addrA = "0x1111111111111111111111111111111111111111111111111111111111111111"

func openTrust(t *testing.T, path string, now func() time.Time) (*sqlite.Store, *sqlite.Trust) {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s, s.Trust(now)
}

func TestTrustLedgerSurvivesReopenAndPrunes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	s, tr := openTrust(t, path, clock)
	if seen, err := tr.Seen(ctx, "d1", now.Add(time.Minute)); err != nil || seen {
		t.Fatalf("first Seen = %v, %v", seen, err)
	}
	if seen, _ := tr.Seen(ctx, "d1", now.Add(time.Minute)); !seen {
		t.Fatal("second Seen within expiry reported unseen")
	}
	s.Close()

	s, tr = openTrust(t, path, clock)
	defer s.Close()
	if seen, _ := tr.Seen(ctx, "d1", now.Add(time.Minute)); !seen {
		t.Fatal("replay ledger forgot a digest across reopen")
	}
	// Expired: usable again (a fresh signature would have a new time, but
	// the ledger itself must not grow forever).
	now = now.Add(2 * time.Minute)
	if seen, _ := tr.Seen(ctx, "d1", now.Add(time.Minute)); seen {
		t.Fatal("expired entry still counted as seen")
	}
	if _, err := tr.Seen(ctx, "d2", now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := tr.PruneReplay(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("PruneReplay = %d, %v; want 1", n, err)
	}
	if l, _ := tr.ReplayLen(ctx); l != 1 {
		t.Fatalf("ReplayLen = %d, want 1", l)
	}
}

func TestTrustLedgerPrunesOnUse(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, tr := openTrust(t, filepath.Join(t.TempDir(), sqlite.FileName), clock)
	defer s.Close()
	for _, d := range []string{"a", "b", "c"} {
		tr.Seen(ctx, d, now.Add(time.Second))
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	tr.Seen(ctx, "z", clock().Add(time.Minute))
	if l, _ := tr.ReplayLen(ctx); l != 1 {
		t.Fatalf("after a use past the prune interval ReplayLen = %d, want 1", l)
	}
}

func TestTrustLedgerConcurrentSingleUse(t *testing.T) {
	ctx := context.Background()
	s, tr := openTrust(t, filepath.Join(t.TempDir(), sqlite.FileName), nil)
	defer s.Close()
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen, err := tr.Seen(ctx, "same", time.Now().Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if !seen {
				fresh.Add(1)
			}
		}()
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Fatalf("%d concurrent uses accepted, want exactly 1", fresh.Load())
	}
}

func TestTrustContactsCreditsHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	s, tr := openTrust(t, path, nil)
	if l, _ := tr.Level(ctx, addrA); l != policy.LevelStranger {
		t.Fatalf("unknown level = %q", l)
	}
	if _, err := policy.ApplyAdmin(ctx, tr, policy.AdminOp{Action: policy.AdminPromote, Address: addrA}); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetLevel(ctx, addrA, "king"); err == nil {
		t.Fatal("stored an unknown level")
	}
	if _, err := tr.Grant(ctx, addrA, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Spend(ctx, addrA, 7); !errors.Is(err, policy.ErrInsufficientCredits) {
		t.Fatalf("overspend: %v", err)
	}
	if b, err := tr.Spend(ctx, addrA, 3); err != nil || b != 2 {
		t.Fatalf("Spend = %d, %v; want 2", b, err)
	}
	at := time.Unix(1_800_000_000, 0)
	tr.Record(ctx, addrA, true, at)
	tr.Record(ctx, addrA, false, at.Add(time.Hour))
	s.Close()

	s, tr = openTrust(t, path, nil)
	defer s.Close()
	if l, _ := tr.Level(ctx, addrA); l != policy.LevelContact {
		t.Fatalf("after reopen level = %q, want contact", l)
	}
	if b, _ := tr.Balance(ctx, addrA); b != 2 {
		t.Fatalf("after reopen balance = %d, want 2", b)
	}
	h, err := tr.History(ctx, addrA)
	if err != nil || h.Requests != 1 || h.Denials != 1 || !h.FirstSeen.Equal(at) || !h.LastSeen.Equal(at.Add(time.Hour)) {
		t.Fatalf("History = %+v, %v", h, err)
	}
	cs, err := tr.Contacts(ctx)
	if err != nil || len(cs) != 1 || cs[0].Level != policy.LevelContact {
		t.Fatalf("Contacts = %+v, %v", cs, err)
	}
	if err := tr.SetLevel(ctx, addrA, policy.LevelStranger); err != nil {
		t.Fatal(err)
	}
	if cs, _ := tr.Contacts(ctx); len(cs) != 0 {
		t.Fatalf("stranger still stored: %+v", cs)
	}
}
