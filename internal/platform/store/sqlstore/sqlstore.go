// Package sqlstore implements store.Store over database/sql for both SQLite
// and PostgreSQL. The two schemas (sqlite/ and postgres/ own their
// migrations) have the same tables and columns, and every query here is
// written in the SQL both accept ($n placeholders, ON CONFLICT, RETURNING),
// so one implementation serves both; a Dialect carries the few differences.
//
// Times are stored as integer milliseconds since the Unix epoch (UTC): the
// API shows millisecond precision, and integers compare and sort the same
// way in every database.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/sqlstmt"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Name is used in error messages ("sqlite", "postgres").
	Name string
	// IsUnique reports whether err is a unique-constraint violation.
	IsUnique func(error) bool
	// IsForeignKey reports whether err is a foreign-key violation.
	IsForeignKey func(error) bool
	// LockOrg, when not empty, is run first in transactions that must not
	// interleave with another writer of the same organization ($1 is the
	// organization id). SQLite needs none: its write transactions are
	// already serialized (BEGIN IMMEDIATE).
	LockOrg string
	// Binary is the COLLATE clause that orders text by bytes, so both
	// databases list secrets in the same order whatever their locale.
	Binary string
}

// Store is a store.Store over a *sql.DB whose schema is already migrated.
//
// Its reads and single-statement writes run through statements kept
// prepared (st). Statements inside transactions are not: preparing one
// takes a second pooled connection while the transaction holds its own, and
// with concurrent transactions (creates racing for an organization's agent
// limit) that emptied the pool while each waited for SQLite's write lock
// (TestConformance/AgentLimitConcurrent: SQLITE_BUSY after the 10 s busy
// timeout). Those paths are rare; the per-request ones (the bearer token,
// the agent lookups, status updates) are kept.
type Store struct {
	db *sql.DB
	st *sqlstmt.Cache
	d  Dialect
}

var _ store.Store = (*Store)(nil)

// New wraps db. The caller has applied the dialect's migrations.
func New(db *sql.DB, d Dialect) *Store { return &Store{db: db, st: sqlstmt.New(db), d: d} }

// DB returns the underlying database, for tests that inspect raw columns.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the kept statements and the database.
func (s *Store) Close() error { return errors.Join(s.st.Close(), s.db.Close()) }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// tx runs fn in a transaction, first taking the organization lock when the
// dialect has one.
func (s *Store) tx(ctx context.Context, orgID string, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.d.LockOrg != "" && orgID != "" {
		if _, err := tx.ExecContext(ctx, s.d.LockOrg, orgID); err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// affected turns "no row changed" into ErrNotFound.
func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return err
}

// CreateOrg implements store.Store.
func (s *Store) CreateOrg(ctx context.Context, o store.Org) error {
	_, err := s.st.Exec(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)`, o.ID, o.Name, ms(o.CreatedAt))
	if err != nil && s.d.IsUnique(err) {
		return fmt.Errorf("organization %q: %w", o.Name, store.ErrConflict)
	}
	return err
}

// OrgByName implements store.Store.
func (s *Store) OrgByName(ctx context.Context, name string) (store.Org, error) {
	return s.org(ctx, `SELECT id, name, created_at, default_model FROM orgs WHERE name = $1`, name)
}

// OrgByID implements store.Store.
func (s *Store) OrgByID(ctx context.Context, id string) (store.Org, error) {
	return s.org(ctx, `SELECT id, name, created_at, default_model FROM orgs WHERE id = $1`, id)
}

// SetOrgDefaultModel implements store.Store.
func (s *Store) SetOrgDefaultModel(ctx context.Context, id, model string) error {
	res, err := s.st.Exec(ctx, `UPDATE orgs SET default_model = $1 WHERE id = $2`, model, id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("organization %s: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) org(ctx context.Context, q, arg string) (store.Org, error) {
	var o store.Org
	var created int64
	err := s.st.QueryRow(ctx, q, arg).Scan(&o.ID, &o.Name, &created, &o.DefaultModel)
	if err != nil {
		return store.Org{}, notFound(err, "organization")
	}
	o.CreatedAt = fromMS(created)
	return o, nil
}

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	_, err := s.st.Exec(ctx, `INSERT INTO tokens (id, org_id, label, hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
		t.ID, t.OrgID, t.Label, t.Hash, ms(t.CreatedAt))
	if err != nil && s.d.IsForeignKey(err) {
		return fmt.Errorf("organization: %w", store.ErrNotFound)
	}
	return err
}

const tokenCols = `id, org_id, label, hash, created_at, last_used_at`

func scanToken(row interface{ Scan(...any) error }) (store.Token, error) {
	var t store.Token
	var created int64
	var used sql.NullInt64
	if err := row.Scan(&t.ID, &t.OrgID, &t.Label, &t.Hash, &created, &used); err != nil {
		return store.Token{}, err
	}
	t.CreatedAt = fromMS(created)
	if used.Valid {
		t.LastUsedAt = fromMS(used.Int64)
	}
	return t, nil
}

// TokenByHash implements store.Store.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	t, err := scanToken(s.st.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = $1`, hash))
	if err != nil {
		return store.Token{}, notFound(err, "token")
	}
	return t, nil
}

// ListTokens implements store.Store.
func (s *Store) ListTokens(ctx context.Context, orgID string) ([]store.Token, error) {
	rows, err := s.st.Query(ctx, `SELECT `+tokenCols+` FROM tokens WHERE org_id = $1 ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteToken implements store.Store.
func (s *Store) DeleteToken(ctx context.Context, orgID, id string) error {
	res, err := s.st.Exec(ctx, `DELETE FROM tokens WHERE org_id = $1 AND id = $2`, orgID, id)
	return affected(res, err, "token")
}

// TouchToken implements store.Store.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.st.Exec(ctx, `UPDATE tokens SET last_used_at = $1 WHERE id = $2`, ms(at), id)
	return affected(res, err, "token")
}

// InitMeta implements store.Store.
func (s *Store) InitMeta(ctx context.Context, name, value string) (string, error) {
	if _, err := s.st.Exec(ctx, `INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
		return "", err
	}
	var v string
	err := s.st.QueryRow(ctx, `SELECT value FROM meta WHERE name = $1`, name).Scan(&v)
	return v, err
}

// PutNode implements store.Store.
func (s *Store) PutNode(ctx context.Context, name, url string, at time.Time) error {
	_, err := s.st.Exec(ctx, `INSERT INTO nodes (name, url, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at`, name, url, ms(at))
	return err
}

// NodeURL implements store.Store.
func (s *Store) NodeURL(ctx context.Context, name string) (string, error) {
	var u string
	err := s.st.QueryRow(ctx, `SELECT url FROM nodes WHERE name = $1`, name).Scan(&u)
	return u, notFound(err, "node")
}
