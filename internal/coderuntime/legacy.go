package coderuntime

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/agenthost/agenthost/internal/sqlitedb"
	"github.com/agenthost/agenthost/internal/store/sqlite"
)

// upgradeV1 converts a runtime database of the first format (the coding
// runtime's own schema, before it stood on the session engine) to the
// engine's, in place: sessions, history, queued messages, requests,
// remembered rules and the event log with its ids. It does nothing to a
// database of the engine's format or to none.
func upgradeV1(ctx context.Context, path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := sqlitedb.Open(path)
	if err != nil {
		return err
	}
	v1, err := isV1(ctx, db)
	if err == nil && v1 {
		err = renameV1(ctx, db)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil || !v1 {
		return err
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("upgrading %s: %w", path, err)
	}
	err = st.Write(ctx, func(tx *sql.Tx) error {
		for _, q := range copyV1 {
			if _, err := tx.Exec(q); err != nil {
				return fmt.Errorf("upgrading %s: %w", path, err)
			}
		}
		return nil
	})
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}

func isV1(ctx context.Context, db *sql.DB) (bool, error) {
	var v, n int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return false, err
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'prompts'`).Scan(&n); err != nil {
		return false, err
	}
	return v == 1 && n == 1, nil
}

var v1Tables = []string{"sessions", "messages", "prompts", "requests", "rules", "events"}

// renameV1 moves the first format's tables aside and resets the schema
// version, so the engine's migrations run from the start.
func renameV1(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, t := range v1Tables {
		if _, err := tx.Exec(`ALTER TABLE ` + t + ` RENAME TO v1_` + t); err != nil {
			return fmt.Errorf("upgrading the runtime database: %w", err)
		}
	}
	for _, ix := range []string{"messages_session", "prompts_state", "requests_state"} {
		if _, err := tx.Exec(`DROP INDEX IF EXISTS ` + ix); err != nil {
			return fmt.Errorf("upgrading the runtime database: %w", err)
		}
	}
	if _, err := tx.Exec(`PRAGMA user_version = 0`); err != nil {
		return err
	}
	return tx.Commit()
}

// copyV1 fills the engine's tables from the first format's and drops
// those.
var copyV1 = []string{
	`INSERT INTO sessions (id, owner, status, prompt, result, state, created_ms, updated_ms, title)
		SELECT id, '', 'done', '', '', CAST('{"turn":0,"iteration":0,"updated":0}' AS BLOB), created, created, COALESCE(title, '')
		FROM v1_sessions ORDER BY rowid`,
	`INSERT INTO session_messages (session_id, id, data) SELECT session_id, id, CAST(data AS BLOB) FROM v1_messages ORDER BY seq`,
	`INSERT INTO session_inputs (id, session_id, data, state, created_ms)
		SELECT id, session_id, CAST(json_object('id', id, 'role', 'user', 'parts', json_array(json_object('type', 'text', 'text', text)), 'created', created) AS BLOB),
		state, created FROM v1_prompts ORDER BY seq`,
	`INSERT INTO session_requests (id, kind, session_id, call_id, data, state, reply, created_ms)
		SELECT id, kind, session_id, call_id, CAST(data AS BLOB), state, CAST(reply AS BLOB), created FROM v1_requests ORDER BY rowid`,
	`INSERT OR IGNORE INTO grants (scope, permission, pattern, action) SELECT '', permission, pattern, action FROM v1_rules ORDER BY rowid`,
	`INSERT INTO session_events (id, session_id, type, data, created_ms) SELECT id, session_id, type, CAST(data AS BLOB), 0 FROM v1_events ORDER BY id`,
	`DROP TABLE v1_events`, `DROP TABLE v1_rules`, `DROP TABLE v1_requests`, `DROP TABLE v1_prompts`, `DROP TABLE v1_messages`, `DROP TABLE v1_sessions`,
}
