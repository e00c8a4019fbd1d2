package coderuntime

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/agenthost/agenthost/internal/coding"
	"github.com/agenthost/agenthost/internal/sqlitedb"
	"github.com/agenthost/agenthost/llm"
)

// keepEvents bounds the events table; older events are pruned.
const keepEvents = 100_000

var migrations = []string{`
CREATE TABLE sessions (
	id      TEXT PRIMARY KEY,
	title   TEXT,
	created INTEGER NOT NULL
);
CREATE TABLE messages (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	session_id TEXT NOT NULL REFERENCES sessions(id),
	id         TEXT NOT NULL,
	data       TEXT NOT NULL
);
CREATE INDEX messages_session ON messages(session_id, seq);
CREATE TABLE prompts (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	id         TEXT NOT NULL UNIQUE,
	session_id TEXT NOT NULL REFERENCES sessions(id),
	text       TEXT NOT NULL,
	state      TEXT NOT NULL,
	created    INTEGER NOT NULL
);
CREATE INDEX prompts_state ON prompts(state, seq);
CREATE TABLE requests (
	id         TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,
	session_id TEXT NOT NULL,
	call_id    TEXT NOT NULL DEFAULT '',
	data       TEXT NOT NULL,
	state      TEXT NOT NULL,
	reply      TEXT,
	created    INTEGER NOT NULL
);
CREATE INDEX requests_state ON requests(state);
CREATE TABLE rules (
	permission TEXT NOT NULL,
	pattern    TEXT NOT NULL,
	action     TEXT NOT NULL,
	PRIMARY KEY (permission, pattern)
);
CREATE TABLE events (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	session_id TEXT NOT NULL,
	type       TEXT NOT NULL,
	data       TEXT NOT NULL
);
`}

// Prompt states.
const (
	promptQueued      = "queued"
	promptRunning     = "running"
	promptDone        = "done"
	promptInterrupted = "interrupted"
	promptDiscarded   = "discarded"
)

// Request kinds and states.
const (
	kindPermission = "permission"
	kindQuestion   = "question"

	statePending   = "pending"
	stateReplied   = "replied"
	stateAnswered  = "answered"
	stateExpired   = "expired"
	stateCancelled = "cancelled"
)

// Event is one stored event of the /control/events stream.
type Event struct {
	ID        int64
	SessionID string
	Type      string
	Data      json.RawMessage
}

// store keeps a runtime's state in SQLite. Writes are serialised by mu;
// each write transaction may append events, and subscribers are woken
// after it commits.
type store struct {
	db     *sql.DB
	mu     sync.Mutex // serialises writes
	writes int

	nmu     sync.Mutex
	changed chan struct{} // closed and replaced when events were committed
}

func openStore(ctx context.Context, path string) (*store, error) {
	db, err := sqlitedb.Open(path)
	if err != nil {
		return nil, err
	}
	if err := sqlitedb.Migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("runtime database %s: %w", path, err)
	}
	return &store{db: db, changed: make(chan struct{})}, nil
}

func (s *store) close() error { return s.db.Close() }

// wait returns a channel closed at the next committed event.
func (s *store) wait() <-chan struct{} {
	s.nmu.Lock()
	defer s.nmu.Unlock()
	return s.changed
}

func (s *store) notify() {
	s.nmu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.nmu.Unlock()
}

// writer is one write transaction.
type writer struct {
	tx     *sql.Tx
	events int
}

func (w *writer) exec(q string, args ...any) (sql.Result, error) { return w.tx.Exec(q, args...) }

// event appends an event; data is marshalled to JSON.
func (w *writer) event(sessionID, typ string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if _, err := w.tx.Exec(`INSERT INTO events (session_id, type, data) VALUES (?, ?, ?)`, sessionID, typ, string(b)); err != nil {
		return err
	}
	w.events++
	return nil
}

// write runs fn in a transaction and wakes event subscribers after commit.
func (s *store) write(fn func(w *writer) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	w := &writer{tx: tx}
	if err := fn(w); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if w.events > 0 {
		s.notify()
		s.writes++
		if s.writes%2000 == 0 {
			_, _ = s.db.Exec(`DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?`, keepEvents)
		}
	}
	return nil
}

// events returns up to limit events after id, of one session when
// sessionID is set.
func (s *store) events(after int64, sessionID string, limit int) ([]Event, error) {
	q := `SELECT id, session_id, type, data FROM events WHERE id > ? ORDER BY id LIMIT ?`
	args := []any{after, limit}
	if sessionID != "" {
		q = `SELECT id, session_id, type, data FROM events WHERE id > ? AND session_id = ? ORDER BY id LIMIT ?`
		args = []any{after, sessionID, limit}
	}
	rows, err := s.db.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var data string
		if err := rows.Scan(&e.ID, &e.SessionID, &e.Type, &data); err != nil {
			return nil, err
		}
		e.Data = json.RawMessage(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *store) lastEventID() (int64, error) {
	var id sql.NullInt64
	err := s.db.QueryRow(`SELECT MAX(id) FROM events`).Scan(&id)
	return id.Int64, err
}

// storedSession is a session row.
type storedSession struct {
	ID      string
	Title   *string
	Created int64
}

func (s *store) sessions() ([]storedSession, error) {
	rows, err := s.db.Query(`SELECT id, title, created FROM sessions ORDER BY rowid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedSession
	for rows.Next() {
		var ss storedSession
		var title sql.NullString
		if err := rows.Scan(&ss.ID, &title, &ss.Created); err != nil {
			return nil, err
		}
		if title.Valid {
			t := title.String
			ss.Title = &t
		}
		out = append(out, ss)
	}
	return out, rows.Err()
}

func (s *store) messages(sessionID string) ([]llm.Message, error) {
	rows, err := s.db.Query(`SELECT data FROM messages WHERE session_id = ? ORDER BY seq`, sessionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []llm.Message{}
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		var m llm.Message
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			return nil, fmt.Errorf("session %s: stored message: %w", sessionID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func addMessage(w *writer, sessionID string, m llm.Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.exec(`INSERT INTO messages (session_id, id, data) VALUES (?, ?, ?)`, sessionID, m.ID, string(b))
	return err
}

// storedPrompt is a user message accepted by POST /control/messages.
type storedPrompt struct {
	ID        string
	SessionID string
	Text      string
	Created   int64 // Unix ms
}

func (s *store) promptsIn(state string) ([]storedPrompt, error) {
	rows, err := s.db.Query(`SELECT id, session_id, text, created FROM prompts WHERE state = ? ORDER BY seq`, state)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedPrompt
	for rows.Next() {
		var p storedPrompt
		if err := rows.Scan(&p.ID, &p.SessionID, &p.Text, &p.Created); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func setPromptState(w *writer, id, state string) error {
	_, err := w.exec(`UPDATE prompts SET state = ? WHERE id = ?`, state, id)
	return err
}

// storedRequest is a permission or question a person was asked.
type storedRequest struct {
	ID, Kind, SessionID, CallID, State string
	Data                               json.RawMessage
}

func (s *store) requests(kind, state string) ([]storedRequest, error) {
	rows, err := s.db.Query(`SELECT id, kind, session_id, call_id, state, data FROM requests WHERE kind = ? AND state = ? ORDER BY created, rowid`, kind, state)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedRequest
	for rows.Next() {
		var r storedRequest
		var data string
		if err := rows.Scan(&r.ID, &r.Kind, &r.SessionID, &r.CallID, &r.State, &data); err != nil {
			return nil, err
		}
		r.Data = json.RawMessage(data)
		out = append(out, r)
	}
	return out, rows.Err()
}

// errNoRequest and errNotPending are the outcomes of answering a request
// that is unknown or no longer pending.
var (
	errNoRequest  = errors.New("no such request")
	errNotPending = errors.New("request is no longer pending")
)

// request reads one request of a kind.
func (s *store) request(kind, id string) (storedRequest, error) {
	var r storedRequest
	var data string
	err := s.db.QueryRow(`SELECT id, kind, session_id, call_id, state, data FROM requests WHERE id = ? AND kind = ?`, id, kind).
		Scan(&r.ID, &r.Kind, &r.SessionID, &r.CallID, &r.State, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return r, errNoRequest
	}
	r.Data = json.RawMessage(data)
	return r, err
}

// finishRequest moves a pending request to state, recording reply, in w.
// It fails with errNoRequest or errNotPending (naming the state).
func finishRequest(w *writer, kind, id, state string, reply any) error {
	var rb any
	if reply != nil {
		b, err := json.Marshal(reply)
		if err != nil {
			return err
		}
		rb = string(b)
	}
	res, err := w.exec(`UPDATE requests SET state = ?, reply = ? WHERE id = ? AND kind = ? AND state = 'pending'`, state, rb, id, kind)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var cur string
	err = w.tx.QueryRow(`SELECT state FROM requests WHERE id = ? AND kind = ?`, id, kind).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return errNoRequest
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: it is %s", errNotPending, cur)
}

func (s *store) rules() ([]coding.Rule, error) {
	rows, err := s.db.Query(`SELECT permission, pattern, action FROM rules ORDER BY rowid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []coding.Rule
	for rows.Next() {
		var r coding.Rule
		if err := rows.Scan(&r.Permission, &r.Pattern, &r.Action); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *store) addRules(rules []coding.Rule) error {
	return s.write(func(w *writer) error {
		for _, r := range rules {
			if _, err := w.exec(`INSERT OR REPLACE INTO rules (permission, pattern, action) VALUES (?, ?, ?)`, r.Permission, r.Pattern, string(r.Action)); err != nil {
				return err
			}
		}
		return nil
	})
}
