// Package sqlite is the platform store in one SQLite file, the default for a
// single platform process. It shares its queries with postgres through
// sqlstore; this package owns the SQLite schema.
package sqlite

import (
	"context"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/agenthost/agenthost/internal/platform/store/sqlstore"
	"github.com/agenthost/agenthost/internal/sqlitedb"
)

// migrations[i] moves the schema from version i to i+1 (PRAGMA
// user_version). Append; never edit a released step.
var migrations = []string{`
CREATE TABLE orgs (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
);
CREATE TABLE tokens (
	id           TEXT PRIMARY KEY,
	org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	label        TEXT NOT NULL,
	hash         BLOB NOT NULL UNIQUE,
	created_at   INTEGER NOT NULL,
	last_used_at INTEGER
);
CREATE INDEX tokens_org ON tokens (org_id, created_at);
CREATE TABLE scopes (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	description TEXT,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	UNIQUE (org_id, name),
	UNIQUE (org_id, id)
);
CREATE TABLE secrets (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	scope_id   TEXT,
	key        TEXT NOT NULL,
	value      BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	scope_key  TEXT GENERATED ALWAYS AS (COALESCE(scope_id, '')) STORED,
	UNIQUE (org_id, scope_key, key),
	FOREIGN KEY (org_id, scope_id) REFERENCES scopes (org_id, id)
);
CREATE INDEX secrets_scope ON secrets (scope_id);
CREATE TABLE agents (
	id             TEXT PRIMARY KEY,
	org_id         TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	name           TEXT NOT NULL,
	scope_id       TEXT,
	model          TEXT NOT NULL,
	initial_prompt TEXT NOT NULL,
	hidden_prompt  TEXT NOT NULL,
	status         TEXT NOT NULL,
	error_msg      TEXT NOT NULL,
	port           INTEGER NOT NULL,
	handle         TEXT,
	control_token  BLOB NOT NULL,
	node           TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	FOREIGN KEY (org_id, scope_id) REFERENCES scopes (org_id, id)
);
CREATE INDEX agents_org ON agents (org_id, created_at);
CREATE INDEX agents_scope ON agents (scope_id);
CREATE INDEX agents_node ON agents (node);
CREATE TABLE meta (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
`, `
ALTER TABLE agents ADD COLUMN upload_bytes INTEGER NOT NULL DEFAULT 0;
`, `
CREATE TABLE nodes (
	name       TEXT PRIMARY KEY,
	url        TEXT NOT NULL,
	updated_at INTEGER NOT NULL
);
`, `
ALTER TABLE orgs ADD COLUMN default_model TEXT NOT NULL DEFAULT '';
`, `
ALTER TABLE agents ADD COLUMN session_permissions_off INTEGER NOT NULL DEFAULT 0;
`, `
ALTER TABLE agents ADD COLUMN mcp_servers TEXT NOT NULL DEFAULT '';
`}

// Dialect is SQLite's sqlstore.Dialect.
var Dialect = sqlstore.Dialect{
	Name: "sqlite",
	IsUnique: func(err error) bool {
		return hasCode(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
	IsForeignKey: func(err error) bool { return hasCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) },
}

func hasCode(err error, codes ...int) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code() == c {
			return true
		}
	}
	return false
}

// Open opens (creating and migrating) the store in the SQLite file at path.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	db, err := sqlitedb.Open(path)
	if err != nil {
		return nil, err
	}
	if err := sqlitedb.Migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("platform database %s: %w", path, err)
	}
	return sqlstore.New(db, Dialect), nil
}
