package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/agenthost/agenthost/trust"

	"github.com/agenthost/agenthost/trust/policy"
)

// trustSchema is migration 2: the tables behind Trust.
const trustSchema = `CREATE TABLE trust_replay (
		digest     TEXT PRIMARY KEY,
		expires_ms INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX trust_replay_expires ON trust_replay(expires_ms);
	CREATE TABLE trust_contacts (
		address    TEXT PRIMARY KEY,
		level      TEXT NOT NULL,
		updated_ms INTEGER NOT NULL
	);
	CREATE TABLE trust_credits (
		address    TEXT PRIMARY KEY,
		balance    INTEGER NOT NULL CHECK (balance >= 0),
		updated_ms INTEGER NOT NULL
	);
	CREATE TABLE trust_history (
		address  TEXT PRIMARY KEY,
		requests INTEGER NOT NULL DEFAULT 0,
		denials  INTEGER NOT NULL DEFAULT 0,
		first_ms INTEGER NOT NULL,
		last_ms  INTEGER NOT NULL
	);`

// pruneEvery is how often Seen also deletes expired replay entries.
const pruneEvery = time.Minute

// Trust keeps the trust package's state in the host database: the replay
// ledger (trust.Ledger), stored caller levels (policy.Contacts), the credits
// ledger (policy.Credits) and per-caller decision counts
// (policy.HistoryStore). Writes share the store's single writer; reads run
// in parallel. Several processes may use one database (the CLI beside a
// running host): every call reads the database, nothing is cached.
type Trust struct {
	s   *Store
	now func() time.Time

	mu        sync.Mutex
	lastPrune time.Time
}

var (
	_ trust.Ledger        = (*Trust)(nil)
	_ policy.Contacts     = (*Trust)(nil)
	_ policy.Credits      = (*Trust)(nil)
	_ policy.HistoryStore = (*Trust)(nil)
)

// Trust returns the trust tables of s; now is the clock that decides which
// replay entries have expired (time.Now if nil).
func (s *Store) Trust(now func() time.Time) *Trust {
	if now == nil {
		now = time.Now
	}
	return &Trust{s: s, now: now}
}

// Seen implements trust.Ledger: it records digest until expires and
// reports whether an unexpired record already existed. The single writer
// makes it atomic. About once a minute it also deletes expired entries.
func (t *Trust) Seen(ctx context.Context, digest string, expires time.Time) (bool, error) {
	now := t.now()
	prune := false
	t.mu.Lock()
	if now.Sub(t.lastPrune) >= pruneEvery {
		t.lastPrune, prune = now, true
	}
	t.mu.Unlock()
	seen := false
	err := t.s.Write(ctx, func(tx *sql.Tx) error {
		if prune {
			if _, err := tx.Exec(`DELETE FROM trust_replay WHERE expires_ms <= ?`, now.UnixMilli()); err != nil {
				return fmt.Errorf("replay ledger: prune: %w", err)
			}
		}
		res, err := tx.Exec(`INSERT INTO trust_replay (digest, expires_ms) VALUES (?, ?)
			ON CONFLICT (digest) DO UPDATE SET expires_ms = excluded.expires_ms
			WHERE trust_replay.expires_ms <= ?`, digest, expires.UnixMilli(), now.UnixMilli())
		if err != nil {
			return fmt.Errorf("replay ledger: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("replay ledger: %w", err)
		}
		seen = n == 0
		return nil
	})
	return seen, err
}

// PruneReplay deletes replay entries that expired at or before now and
// returns how many.
func (t *Trust) PruneReplay(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := t.s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM trust_replay WHERE expires_ms <= ?`, now.UnixMilli())
		if err != nil {
			return fmt.Errorf("replay ledger: prune: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// ReplayLen returns the number of replay entries, expired or not.
func (t *Trust) ReplayLen(ctx context.Context) (int, error) {
	var n int
	err := t.s.db.QueryRowContext(ctx, `SELECT count(*) FROM trust_replay`).Scan(&n)
	return n, err
}

// Level implements policy.Contacts.
func (t *Trust) Level(ctx context.Context, addr string) (policy.Level, error) {
	var l string
	err := t.s.db.QueryRowContext(ctx, `SELECT level FROM trust_contacts WHERE address = ?`, addr).Scan(&l)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return policy.LevelStranger, nil
	case err != nil:
		return "", fmt.Errorf("contacts: %w", err)
	}
	return policy.Level(l), nil
}

// SetLevel implements policy.Contacts: LevelStranger (or "") removes addr.
func (t *Trust) SetLevel(ctx context.Context, addr string, level policy.Level) error {
	switch level {
	case policy.LevelStranger, "", policy.LevelContact, policy.LevelWhitelisted, policy.LevelBlocked:
	default:
		return fmt.Errorf("contacts: cannot store level %q", level)
	}
	now := t.now().UnixMilli()
	return t.s.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if level == policy.LevelStranger || level == "" {
			_, err = tx.Exec(`DELETE FROM trust_contacts WHERE address = ?`, addr)
		} else {
			_, err = tx.Exec(`INSERT INTO trust_contacts (address, level, updated_ms) VALUES (?, ?, ?)
				ON CONFLICT (address) DO UPDATE SET level = excluded.level, updated_ms = excluded.updated_ms`,
				addr, string(level), now)
		}
		if err != nil {
			return fmt.Errorf("contacts: %w", err)
		}
		return nil
	})
}

// Contacts lists the stored levels, sorted by address.
func (t *Trust) Contacts(ctx context.Context) ([]policy.Contact, error) {
	rows, err := t.s.db.QueryContext(ctx, `SELECT address, level FROM trust_contacts ORDER BY address`)
	if err != nil {
		return nil, fmt.Errorf("contacts: %w", err)
	}
	defer rows.Close()
	var out []policy.Contact
	for rows.Next() {
		var c policy.Contact
		var l string
		if err := rows.Scan(&c.Address, &l); err != nil {
			return nil, fmt.Errorf("contacts: %w", err)
		}
		c.Level = policy.Level(l)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Balance implements policy.Credits.
func (t *Trust) Balance(ctx context.Context, addr string) (int64, error) {
	var b int64
	err := t.s.db.QueryRowContext(ctx, `SELECT balance FROM trust_credits WHERE address = ?`, addr).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("credits: %w", err)
	}
	return b, nil
}

// balanceTx reads addr's balance inside a write.
func balanceTx(tx *sql.Tx, addr string) (int64, error) {
	var b int64
	err := tx.QueryRow(`SELECT balance FROM trust_credits WHERE address = ?`, addr).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return b, err
}

// Grant implements policy.Credits.
func (t *Trust) Grant(ctx context.Context, addr string, amount int64) (int64, error) {
	if amount <= 0 {
		return 0, fmt.Errorf("credits: grant must be positive, not %d", amount)
	}
	now := t.now().UnixMilli()
	var bal int64
	err := t.s.Write(ctx, func(tx *sql.Tx) error {
		cur, err := balanceTx(tx, addr)
		if err != nil {
			return fmt.Errorf("credits: %w", err)
		}
		if cur > math.MaxInt64-amount {
			return errors.New("credits: balance overflow")
		}
		bal = cur + amount
		_, err = tx.Exec(`INSERT INTO trust_credits (address, balance, updated_ms) VALUES (?, ?, ?)
			ON CONFLICT (address) DO UPDATE SET balance = excluded.balance, updated_ms = excluded.updated_ms`,
			addr, bal, now)
		if err != nil {
			return fmt.Errorf("credits: %w", err)
		}
		return nil
	})
	return bal, err
}

// Spend implements policy.Credits: it takes amount from addr's balance, or
// fails with policy.ErrInsufficientCredits and changes nothing.
func (t *Trust) Spend(ctx context.Context, addr string, amount int64) (int64, error) {
	if amount <= 0 {
		return 0, fmt.Errorf("credits: spend must be positive, not %d", amount)
	}
	now := t.now().UnixMilli()
	var bal int64
	err := t.s.Write(ctx, func(tx *sql.Tx) error {
		cur, err := balanceTx(tx, addr)
		if err != nil {
			return fmt.Errorf("credits: %w", err)
		}
		bal = cur
		if cur < amount {
			return policy.ErrInsufficientCredits
		}
		bal = cur - amount
		if _, err := tx.Exec(`UPDATE trust_credits SET balance = ?, updated_ms = ? WHERE address = ?`, bal, now, addr); err != nil {
			return fmt.Errorf("credits: %w", err)
		}
		return nil
	})
	return bal, err
}

// History implements policy.HistoryStore.
func (t *Trust) History(ctx context.Context, addr string) (policy.History, error) {
	var h policy.History
	var first, last int64
	err := t.s.db.QueryRowContext(ctx, `SELECT requests, denials, first_ms, last_ms FROM trust_history WHERE address = ?`, addr).
		Scan(&h.Requests, &h.Denials, &first, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("history: %w", err)
	}
	h.FirstSeen, h.LastSeen = fromMS(first), fromMS(last)
	return h, nil
}

// Record implements policy.HistoryStore.
func (t *Trust) Record(ctx context.Context, addr string, allowed bool, at time.Time) error {
	req, den := 0, 1
	if allowed {
		req, den = 1, 0
	}
	return t.s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO trust_history (address, requests, denials, first_ms, last_ms) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (address) DO UPDATE SET requests = requests + excluded.requests,
				denials = denials + excluded.denials, last_ms = excluded.last_ms`,
			addr, req, den, at.UnixMilli(), at.UnixMilli())
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		return nil
	})
}
