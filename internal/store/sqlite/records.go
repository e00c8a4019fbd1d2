package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/agenthost/agenthost/internal/store"
)

// recordsSchema is migration 4: the session engine's records. Messages
// that hosts kept inside the session's state blob move to rows, so a long
// conversation is appended to, never rewritten.
const recordsSchema = `
ALTER TABLE sessions ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN error TEXT NOT NULL DEFAULT '';
CREATE TABLE session_messages (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	session_id TEXT NOT NULL,
	id         TEXT NOT NULL DEFAULT '',
	data       BLOB NOT NULL,
	error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX session_messages_session ON session_messages(session_id, seq);
CREATE TABLE session_inputs (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	id         TEXT NOT NULL UNIQUE,
	session_id TEXT NOT NULL,
	data       BLOB NOT NULL,
	state      TEXT NOT NULL,
	created_ms INTEGER NOT NULL
);
CREATE INDEX session_inputs_state ON session_inputs(state, seq);
CREATE INDEX session_inputs_session ON session_inputs(session_id, state);
CREATE TABLE session_requests (
	id         TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,
	session_id TEXT NOT NULL,
	call_id    TEXT NOT NULL DEFAULT '',
	data       BLOB NOT NULL,
	state      TEXT NOT NULL,
	reply      BLOB,
	created_ms INTEGER NOT NULL
);
CREATE INDEX session_requests_state ON session_requests(kind, state, created_ms);
CREATE INDEX session_requests_session ON session_requests(session_id);
CREATE TABLE grants (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	scope      TEXT NOT NULL,
	permission TEXT NOT NULL,
	pattern    TEXT NOT NULL,
	action     TEXT NOT NULL,
	UNIQUE (scope, permission, pattern)
);
INSERT INTO session_messages (session_id, id, data)
	SELECT s.id, COALESCE(json_extract(j.value, '$.id'), ''), CAST(j.value AS BLOB)
	FROM sessions s, json_each(CAST(s.state AS TEXT), '$.messages') j
	WHERE s.state IS NOT NULL AND json_valid(CAST(s.state AS TEXT))
	ORDER BY s.rowid, CAST(j.key AS INTEGER);
UPDATE sessions SET state = CAST(json_remove(CAST(state AS TEXT), '$.messages') AS BLOB)
	WHERE state IS NOT NULL AND json_valid(CAST(state AS TEXT));
`

// Apply implements store.Store.
func (s *Store) Apply(ctx context.Context, c store.Change) ([]store.Event, error) {
	evs := append([]store.Event(nil), c.Events...)
	err := s.Write(ctx, func(tx *sql.Tx) error {
		if c.Create != nil {
			if err := s.createSession(tx, *c.Create); err != nil {
				return err
			}
		}
		if c.Update != nil {
			if err := s.updateSession(tx, *c.Update); err != nil {
				return err
			}
		}
		if c.Replace {
			sess := c.Create
			if sess == nil {
				sess = c.Update
			}
			if sess == nil {
				return errors.New("apply: Replace without a session")
			}
			if _, err := s.exec(tx, `DELETE FROM session_messages WHERE session_id = ?`, sess.ID); err != nil {
				return fmt.Errorf("replace messages: %w", err)
			}
		}
		for _, m := range c.Messages {
			if _, err := s.exec(tx, `INSERT INTO session_messages (session_id, id, data, error) VALUES (?, ?, ?, ?)`,
				m.SessionID, m.ID, []byte(m.Data), m.Error); err != nil {
				return fmt.Errorf("append message: %w", err)
			}
		}
		for _, in := range c.Inputs {
			if _, err := s.exec(tx, `INSERT INTO session_inputs (id, session_id, data, state, created_ms) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET state = excluded.state`,
				in.ID, in.SessionID, []byte(in.Data), string(in.State), ms(in.Created)); err != nil {
				return fmt.Errorf("input: %w", err)
			}
		}
		if c.DiscardQueued != "" {
			if _, err := s.exec(tx, `UPDATE session_inputs SET state = ? WHERE session_id = ? AND state = ?`,
				string(store.InputDiscarded), c.DiscardQueued, string(store.InputQueued)); err != nil {
				return fmt.Errorf("discard queued inputs: %w", err)
			}
		}
		for _, r := range c.Requests {
			if _, err := s.exec(tx, `INSERT INTO session_requests (id, kind, session_id, call_id, data, state, reply, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				r.ID, r.Kind, r.SessionID, r.CallID, []byte(r.Data), r.State, nullJSON(r.Reply), ms(r.Created)); err != nil {
				return fmt.Errorf("request: %w", err)
			}
		}
		for _, r := range c.Resolve {
			if err := s.resolve(tx, r); err != nil {
				return err
			}
		}
		for _, g := range c.Grants {
			if _, err := s.exec(tx, `INSERT OR IGNORE INTO grants (scope, permission, pattern, action) VALUES (?, ?, ?, ?)`,
				g.Scope, g.Permission, g.Pattern, g.Action); err != nil {
				return fmt.Errorf("grant: %w", err)
			}
		}
		return s.appendEvents(tx, evs)
	})
	if err != nil {
		return nil, err
	}
	return evs, nil
}

func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

// resolve moves a pending request to its new state, or says why not.
func (s *Store) resolve(tx *sql.Tx, r store.Resolution) error {
	res, err := s.exec(tx, `UPDATE session_requests SET state = ?, reply = ? WHERE id = ? AND kind = ? AND state = ?`,
		r.State, nullJSON(r.Reply), r.ID, r.Kind, store.RequestPending)
	if err != nil {
		return fmt.Errorf("resolve request: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var cur string
	switch err := s.txQueryRow(tx, `SELECT state FROM session_requests WHERE id = ? AND kind = ?`, r.ID, r.Kind).Scan(&cur); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s %s: %w", r.Kind, r.ID, store.ErrNoRequest)
	case err != nil:
		return fmt.Errorf("resolve request: %w", err)
	}
	return fmt.Errorf("%s %s: %w", r.Kind, r.ID, &store.StateError{State: cur})
}

// Messages implements store.Store.
func (s *Store) Messages(ctx context.Context, sessionID string) ([]store.Message, error) {
	rows, err := s.query(ctx, `SELECT id, data, error FROM session_messages WHERE session_id = ? ORDER BY seq`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("messages: %w", err)
	}
	defer rows.Close()
	out := []store.Message{}
	for rows.Next() {
		m := store.Message{SessionID: sessionID}
		var data []byte
		if err := rows.Scan(&m.ID, &data, &m.Error); err != nil {
			return nil, fmt.Errorf("messages: %w", err)
		}
		m.Data = data
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("messages: %w", err)
	}
	return out, nil
}

// Inputs implements store.Store.
func (s *Store) Inputs(ctx context.Context, state store.InputState) ([]store.Input, error) {
	rows, err := s.query(ctx, `SELECT id, session_id, data, state, created_ms FROM session_inputs WHERE state = ? ORDER BY seq`, string(state))
	if err != nil {
		return nil, fmt.Errorf("inputs: %w", err)
	}
	defer rows.Close()
	var out []store.Input
	for rows.Next() {
		var in store.Input
		var data []byte
		var st string
		var created int64
		if err := rows.Scan(&in.ID, &in.SessionID, &data, &st, &created); err != nil {
			return nil, fmt.Errorf("inputs: %w", err)
		}
		in.Data, in.State, in.Created = data, store.InputState(st), fromMS(created)
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inputs: %w", err)
	}
	return out, nil
}

const requestCols = `id, kind, session_id, call_id, data, state, reply, created_ms`

func scanRequest(row interface{ Scan(...any) error }) (store.Request, error) {
	var r store.Request
	var data, reply []byte
	var created int64
	if err := row.Scan(&r.ID, &r.Kind, &r.SessionID, &r.CallID, &data, &r.State, &reply, &created); err != nil {
		return r, err
	}
	r.Data, r.Created = data, fromMS(created)
	if len(reply) > 0 {
		r.Reply = reply
	}
	return r, nil
}

// Request implements store.Store.
func (s *Store) Request(ctx context.Context, kind, id string) (store.Request, error) {
	r, err := scanRequest(s.queryRow(ctx, `SELECT `+requestCols+` FROM session_requests WHERE id = ? AND kind = ?`, id, kind))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("%s %s: %w", kind, id, store.ErrNoRequest)
	}
	if err != nil {
		return r, fmt.Errorf("request: %w", err)
	}
	return r, nil
}

// Requests implements store.Store.
func (s *Store) Requests(ctx context.Context, kind, state string) ([]store.Request, error) {
	q, args := `SELECT `+requestCols+` FROM session_requests WHERE kind = ? AND state = ? ORDER BY created_ms, rowid`, []any{kind, state}
	if kind == "" {
		q, args = `SELECT `+requestCols+` FROM session_requests WHERE state = ? ORDER BY created_ms, rowid`, args[1:]
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("requests: %w", err)
	}
	defer rows.Close()
	var out []store.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("requests: %w", err)
	}
	return out, nil
}

// Grants implements store.Store.
func (s *Store) Grants(ctx context.Context, scopes ...string) ([]store.Grant, error) {
	q, args := `SELECT scope, permission, pattern, action FROM grants ORDER BY seq`, []any{}
	if len(scopes) > 0 {
		q = `SELECT scope, permission, pattern, action FROM grants WHERE scope IN (?` + strings.Repeat(", ?", len(scopes)-1) + `) ORDER BY seq`
		for _, sc := range scopes {
			args = append(args, sc)
		}
	}
	rows, err := s.db.QueryContext(ctx, q, args...) // not kept: the IN list varies
	if err != nil {
		return nil, fmt.Errorf("grants: %w", err)
	}
	defer rows.Close()
	var out []store.Grant
	for rows.Next() {
		var g store.Grant
		if err := rows.Scan(&g.Scope, &g.Permission, &g.Pattern, &g.Action); err != nil {
			return nil, fmt.Errorf("grants: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("grants: %w", err)
	}
	return out, nil
}

// LastEventID implements store.Store.
func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.queryRow(ctx, `SELECT MAX(id) FROM session_events`).Scan(&id); err != nil {
		return 0, fmt.Errorf("last event id: %w", err)
	}
	return id.Int64, nil
}

// PruneEvents implements store.Store.
func (s *Store) PruneEvents(ctx context.Context, keep int) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(tx, `DELETE FROM session_events WHERE id <= (SELECT MAX(id) FROM session_events) - ?`, keep); err != nil {
			return fmt.Errorf("prune events: %w", err)
		}
		return nil
	})
}
