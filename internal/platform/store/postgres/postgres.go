// Package postgres is the platform store in PostgreSQL, so that several
// platform replicas share one state. It shares its queries with sqlite
// through sqlstore; this package owns the PostgreSQL schema and migrations.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/agenthost/agenthost/internal/platform/store/sqlstore"
)

// migrations[i] moves the schema from version i to i+1. Append; never edit
// a released step.
var migrations = []string{`
CREATE TABLE orgs (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL
);
CREATE TABLE tokens (
	id           TEXT PRIMARY KEY,
	org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	label        TEXT NOT NULL,
	hash         BYTEA NOT NULL UNIQUE,
	created_at   BIGINT NOT NULL,
	last_used_at BIGINT
);
CREATE INDEX tokens_org ON tokens (org_id, created_at);
CREATE TABLE scopes (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	description TEXT,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL,
	UNIQUE (org_id, name),
	UNIQUE (org_id, id)
);
CREATE TABLE secrets (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	scope_id   TEXT,
	key        TEXT NOT NULL,
	value      BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
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
	control_token  BYTEA NOT NULL,
	node           TEXT NOT NULL,
	created_at     BIGINT NOT NULL,
	updated_at     BIGINT NOT NULL,
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
ALTER TABLE agents ADD COLUMN upload_bytes BIGINT NOT NULL DEFAULT 0;
`, `
CREATE TABLE nodes (
	name       TEXT PRIMARY KEY,
	url        TEXT NOT NULL,
	updated_at BIGINT NOT NULL
);
`, `
ALTER TABLE orgs ADD COLUMN default_model TEXT NOT NULL DEFAULT '';
`, `
ALTER TABLE agents ADD COLUMN session_permissions_off BOOLEAN NOT NULL DEFAULT FALSE;
`, `
ALTER TABLE agents ADD COLUMN mcp_servers TEXT NOT NULL DEFAULT '';
`}

// migrateLock is the advisory lock key that serializes migrations between
// replicas starting at the same time ("agenthost platform" in ASCII).
const migrateLock = 0x6167656e74686f73

// Dialect is PostgreSQL's sqlstore.Dialect.
var Dialect = sqlstore.Dialect{
	Name:         "postgres",
	IsUnique:     func(err error) bool { return hasCode(err, "23505") },
	IsForeignKey: func(err error) bool { return hasCode(err, "23503") },
	// Row lock on the organization: serializes agent admission (the
	// per-organization limit) and secret writes against scope deletion.
	LockOrg: `SELECT 1 FROM orgs WHERE id = $1 FOR UPDATE`,
	Binary:  ` COLLATE "C"`,
}

func hasCode(err error, code string) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == code
}

// Open connects to the database named by dsn (a postgres:// URL or key=value
// string) and brings its schema up to date.
func Open(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return sqlstore.New(db, Dialect), nil
}

// migrate applies the missing migrations, each in its own transaction with
// its version row, under an advisory lock so replicas do not race.
func migrate(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrateLock))
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrations table: %w", err)
	}
	var v int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d); upgrade agenthost", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, i+1, time.Now().UnixMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}
