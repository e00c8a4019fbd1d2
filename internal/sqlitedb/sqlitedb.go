// Package sqlitedb opens SQLite databases the way every agenthost store
// wants them: pure Go (modernc.org/sqlite, no cgo), WAL journal, a busy
// timeout instead of "database is locked" errors, foreign keys on, and
// schema migrations tracked in PRAGMA user_version.
//
// synchronous=NORMAL in WAL mode keeps every committed transaction across a
// process crash (kill -9); only a power loss can drop the last commits.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Open opens (creating if needed) the database at path. The parent
// directory is created with mode 0700, and the database file is made
// 0600 (SQLite makes its -wal and -shm files with the database's mode),
// so that it stays private in a directory others may traverse.
func Open(path string) (*sql.DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = f.Chmod(0o600)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	for _, side := range []string{"-wal", "-shm"} {
		if err := os.Chmod(path+side, 0o600); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	// BEGIN IMMEDIATE takes the write lock up front, so concurrent writers
	// wait on busy_timeout instead of failing on lock upgrade.
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	// Keep every connection open: database/sql keeps 2 idle by default and
	// closes the rest as they come back, so under load connections were
	// opened again and again (their pragmas run, the schema read) and
	// every statement a store keeps prepared was prepared again on each
	// new one (~8% of POST /input's CPU).
	db.SetMaxIdleConns(8)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// Migrate brings the schema up to date: migrations[i] moves the schema from
// version i to i+1. The pending ones run in one transaction with the
// version bump, so a crash or a failing step leaves the previous version
// intact, and a new database costs one commit. The version is read inside
// the transaction, which holds the write lock (BEGIN IMMEDIATE), so
// processes opening a new database at once (a platform starting while a
// token command runs) apply each step once.
func Migrate(ctx context.Context, db *sql.DB, migrations []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d); upgrade agenthost", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migration %d: %w", len(migrations), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %d: %w", len(migrations), err)
	}
	return nil
}
