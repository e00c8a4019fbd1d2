// Package sqlite is the host's default store: one SQLite file (pure Go,
// WAL) in the data directory.
//
// All writes go through one goroutine that groups whatever is queued into a
// single transaction (group commit). SQLite allows one writer at a time;
// serialising in Go avoids lock contention and busy-wait sleeps, and
// batching keeps hundreds of concurrently streaming sessions cheap. A write
// call returns only after its transaction committed. Reads run in parallel
// on their own connections, as WAL allows.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/internal/sqlitedb"
	"github.com/agenthost/agenthost/internal/sqlstmt"
	"github.com/agenthost/agenthost/internal/store"
)

// FileName is the database's name inside the host's data directory.
const FileName = "host.db"

// Migrations is the schema, one entry per version (see sqlitedb.Migrate).
// Features that keep their own tables in the host database (the trust
// issue's replay ledger, contacts and credits) append an entry here; an
// existing entry is never edited, since deployed databases have run it.
var Migrations = []string{
	// 1: sessions and their event logs.
	`CREATE TABLE sessions (
		id          TEXT PRIMARY KEY,
		owner       TEXT NOT NULL DEFAULT '',
		status      TEXT NOT NULL,
		prompt      TEXT NOT NULL DEFAULT '',
		result      TEXT NOT NULL DEFAULT '',
		state       BLOB,
		created_ms  INTEGER NOT NULL,
		updated_ms  INTEGER NOT NULL,
		expires_ms  INTEGER NOT NULL DEFAULT 0,
		duration_ms INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX sessions_owner ON sessions(owner, created_ms);
	CREATE INDEX sessions_expires ON sessions(expires_ms) WHERE expires_ms > 0;
	CREATE TABLE session_events (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		session_id TEXT NOT NULL,
		type       TEXT NOT NULL,
		data       BLOB NOT NULL,
		created_ms INTEGER NOT NULL
	);
	CREATE INDEX session_events_session ON session_events(session_id, id);`,
	// 2: trust — the replay ledger, stored caller levels, the credits
	// ledger and per-caller request counts (see trust.go).
	trustSchema,
	// 3: ids of expired sessions, reserved after their content is deleted.
	`CREATE TABLE expired_sessions (
		id         TEXT PRIMARY KEY,
		expired_ms INTEGER NOT NULL
	);
	CREATE INDEX expired_sessions_time ON expired_sessions(expired_ms);`,
	// 4: the session engine's records (records.go): titles, the
	// conversation as rows (moved out of the state blob), queued inputs,
	// requests to a person, remembered approvals.
	recordsSchema,
}

// maxBatch bounds how many queued writes share one transaction.
const maxBatch = 512

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store closed")

// Store is the SQLite store.Store.
type Store struct {
	db    *sql.DB
	stmts *sqlstmt.Cache
	ops   chan writeOp
	mu    sync.RWMutex // guards closed against sends on a closed ops
	done  chan struct{}

	closed bool

	commits, writes atomic.Int64 // Stats
}

// Stats counts what the store's writer did since Open. Writes over
// commits is how well writes share transactions, and commits per agent
// run is what a run costs the disk: the figures speed work on the engine
// is measured by (docs/performance.md).
type Stats struct {
	// Commits is the transactions committed (or rolled back).
	Commits int64
	// Writes is the writes (Write, Apply) they held.
	Writes int64
}

// Stats returns the counts so far.
func (s *Store) Stats() Stats { return Stats{Commits: s.commits.Load(), Writes: s.writes.Load()} }

// Collectors are the store's metrics, agenthost_store_commits_total and
// agenthost_store_writes_total, for the registry of whoever owns the
// store.
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: obs.Namespace, Name: "store_commits_total",
			Help: "Transactions the session store committed; writes queued together share one."},
			func() float64 { return float64(s.commits.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: obs.Namespace, Name: "store_writes_total",
			Help: "Writes the session store committed."},
			func() float64 { return float64(s.writes.Load()) }),
	}
}

type writeOp struct {
	fn   func(*sql.Tx) error
	done chan error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating and migrating) the database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(path)
	if err != nil {
		return nil, err
	}
	if err := sqlitedb.Migrate(ctx, db, Migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	s := &Store{db: db, stmts: sqlstmt.New(db), ops: make(chan writeOp, 1024), done: make(chan struct{})}
	go s.loop()
	return s, nil
}

// DB returns the underlying database for reads by features that add their
// own tables. Their writes should go through Write to share the single
// writer.
func (s *Store) DB() *sql.DB { return s.db }

// Write runs fn in a transaction shared with other queued writes and
// returns after that transaction committed. fn's error rolls back fn's
// changes only (it runs inside a savepoint) and is returned.
func (s *Store) Write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := writeOp{fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.ops <- op
	s.mu.RUnlock()
	// Wait even if ctx ends: the write may be committing, and the caller
	// must not report it as lost.
	return <-op.done
}

func (s *Store) loop() {
	defer close(s.done)
	for op := range s.ops {
		batch := []writeOp{op}
	drain:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

func (s *Store) commit(batch []writeOp) {
	defer func() {
		s.commits.Add(1)
		s.writes.Add(int64(len(batch)))
	}()
	errs := make([]error, len(batch))
	err := func() error {
		tx, err := s.db.Begin()
		if err != nil {
			return err
		}
		if len(batch) == 1 {
			// Alone in its transaction, a failed write rolls the whole
			// transaction back: no savepoint needed.
			if errs[0] = batch[0].fn(tx); errs[0] != nil {
				return tx.Rollback()
			}
			return tx.Commit()
		}
		for i, op := range batch {
			if _, err := s.exec(tx, "SAVEPOINT w"); err != nil {
				tx.Rollback()
				return err
			}
			if errs[i] = op.fn(tx); errs[i] != nil {
				if _, err := s.exec(tx, "ROLLBACK TO w"); err != nil {
					tx.Rollback()
					return err
				}
			}
			if _, err := s.exec(tx, "RELEASE w"); err != nil {
				tx.Rollback()
				return err
			}
		}
		return tx.Commit()
	}()
	for i, op := range batch {
		if err != nil {
			op.done <- fmt.Errorf("store: commit: %w", err)
		} else {
			op.done <- errs[i]
		}
	}
}

// Close waits for queued writes and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.ops)
	s.mu.Unlock()
	<-s.done
	s.stmts.Close()
	return s.db.Close()
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func state(b json.RawMessage) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, ss store.Session) error {
	return s.Write(ctx, func(tx *sql.Tx) error { return s.createSession(tx, ss) })
}

func (s *Store) createSession(tx *sql.Tx, ss store.Session) error {
	var one int
	switch err := s.txQueryRow(tx, `SELECT 1 FROM sessions WHERE id = ?`, ss.ID).Scan(&one); {
	case err == nil:
		return fmt.Errorf("session %s: %w", ss.ID, store.ErrExists)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("create session: %w", err)
	}
	_, err := s.exec(tx, `INSERT INTO sessions (id, owner, status, prompt, result, state, created_ms, updated_ms, expires_ms, duration_ms, title, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ss.ID, ss.Owner, string(ss.Status), ss.Prompt, ss.Result, state(ss.State),
		ms(ss.Created), ms(ss.Updated), ms(ss.Expires), ss.Duration.Milliseconds(), ss.Title, ss.Error)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// UpdateSession implements store.Store.
func (s *Store) UpdateSession(ctx context.Context, ss store.Session) error {
	return s.Write(ctx, func(tx *sql.Tx) error { return s.updateSession(tx, ss) })
}

func (s *Store) updateSession(tx *sql.Tx, ss store.Session) error {
	res, err := s.exec(tx, `UPDATE sessions SET owner = ?, status = ?, prompt = ?, result = ?, state = ?,
		created_ms = ?, updated_ms = ?, expires_ms = ?, duration_ms = ?, title = ?, error = ? WHERE id = ?`,
		ss.Owner, string(ss.Status), ss.Prompt, ss.Result, state(ss.State),
		ms(ss.Created), ms(ss.Updated), ms(ss.Expires), ss.Duration.Milliseconds(), ss.Title, ss.Error, ss.ID)
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("session %s: %w", ss.ID, store.ErrNotFound)
	}
	return nil
}

const sessionCols = `id, owner, status, prompt, result, state, created_ms, updated_ms, expires_ms, duration_ms, title, error`

func scanSession(row interface{ Scan(...any) error }) (store.Session, error) {
	var ss store.Session
	var status string
	var st []byte
	var created, updated, expires, dur int64
	if err := row.Scan(&ss.ID, &ss.Owner, &status, &ss.Prompt, &ss.Result, &st, &created, &updated, &expires, &dur, &ss.Title, &ss.Error); err != nil {
		return ss, err
	}
	ss.Status = store.Status(status)
	if len(st) > 0 {
		ss.State = json.RawMessage(st)
	}
	ss.Created, ss.Updated, ss.Expires = fromMS(created), fromMS(updated), fromMS(expires)
	ss.Duration = time.Duration(dur) * time.Millisecond
	return ss, nil
}

// GetSession implements store.Store.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	ss, err := scanSession(s.queryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		var one int
		switch err := s.queryRow(ctx, `SELECT 1 FROM expired_sessions WHERE id = ?`, id).Scan(&one); {
		case err == nil:
			return ss, fmt.Errorf("session %s: %w", id, store.ErrExpired)
		case !errors.Is(err, sql.ErrNoRows):
			return ss, fmt.Errorf("get session: %w", err)
		}
		return ss, fmt.Errorf("session %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return ss, fmt.Errorf("get session: %w", err)
	}
	return ss, nil
}

// ListSessions implements store.Store.
func (s *Store) ListSessions(ctx context.Context, opts store.ListOptions) ([]store.Session, error) {
	limit := opts.Limit
	if limit == 0 {
		limit = 1000
	}
	q := `SELECT ` + sessionCols + ` FROM sessions`
	args := []any{}
	if !opts.All {
		q += ` WHERE owner = ?`
		args = append(args, opts.Owner)
	}
	if opts.OldestFirst {
		q += ` ORDER BY created_ms, rowid LIMIT ?`
	} else {
		q += ` ORDER BY created_ms DESC, id DESC LIMIT ?`
	}
	args = append(args, limit)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []store.Session
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, ss)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// AppendEvents implements store.Store.
func (s *Store) AppendEvents(ctx context.Context, evs []store.Event) ([]store.Event, error) {
	return s.Apply(ctx, store.Change{Events: evs})
}

func (s *Store) appendEvents(tx *sql.Tx, evs []store.Event) error {
	for i := range evs {
		e := &evs[i]
		res, err := s.exec(tx, `INSERT INTO session_events (session_id, type, data, created_ms) VALUES (?, ?, ?, ?)`,
			e.SessionID, e.Type, []byte(e.Data), ms(e.Created))
		if err != nil {
			return fmt.Errorf("append event: %w", err)
		}
		if e.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("append event: %w", err)
		}
	}
	return nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, sessionID string, after int64, limit int) ([]store.Event, error) {
	if limit <= 0 {
		limit = -1
	}
	q := `SELECT id, session_id, type, data, created_ms FROM session_events WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?`
	args := []any{sessionID, after, limit}
	if sessionID == "" {
		q = `SELECT id, session_id, type, data, created_ms FROM session_events WHERE id > ? ORDER BY id LIMIT ?`
		args = args[1:]
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		var data []byte
		var created int64
		if err := rows.Scan(&e.ID, &e.SessionID, &e.Type, &data, &created); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		e.Data, e.Created = data, fromMS(created)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return out, nil
}

// InterruptRunning implements store.Store.
func (s *Store) InterruptRunning(ctx context.Context, now, expires time.Time) (int, error) {
	var n int64
	err := s.Write(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(tx, `UPDATE sessions SET status = ?, updated_ms = ?, expires_ms = ? WHERE status IN (?, ?)`,
			string(store.StatusInterrupted), ms(now), ms(expires), string(store.StatusRunning), string(store.StatusWaitingApproval))
		if err != nil {
			return fmt.Errorf("interrupt running: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// DeleteExpired implements store.Store.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.Write(ctx, func(tx *sql.Tx) error {
		const expired = `SELECT id FROM sessions WHERE expires_ms > 0 AND expires_ms <= ? AND status IN (?, ?, ?)`
		args := []any{ms(now), string(store.StatusDone), string(store.StatusFailed), string(store.StatusInterrupted)}
		for _, table := range []string{"session_events", "session_messages", "session_inputs", "session_requests"} {
			if _, err := s.exec(tx, `DELETE FROM `+table+` WHERE session_id IN (`+expired+`)`, args...); err != nil {
				return fmt.Errorf("delete expired %s: %w", table, err)
			}
		}
		if _, err := s.exec(tx, `DELETE FROM grants WHERE scope IN (`+expired+`)`, args...); err != nil {
			return fmt.Errorf("delete expired grants: %w", err)
		}
		if _, err := s.exec(tx, `INSERT OR IGNORE INTO expired_sessions (id, expired_ms) SELECT id, expires_ms FROM sessions WHERE id IN (`+expired+`)`, args...); err != nil {
			return fmt.Errorf("reserve expired ids: %w", err)
		}
		if _, err := s.exec(tx, `DELETE FROM expired_sessions WHERE expired_ms <= ?`, ms(now.Add(-store.ExpiredIDRetention))); err != nil {
			return fmt.Errorf("forget old expired ids: %w", err)
		}
		res, err := s.exec(tx, `DELETE FROM sessions WHERE id IN (`+expired+`)`, args...)
		if err != nil {
			return fmt.Errorf("delete expired sessions: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}
