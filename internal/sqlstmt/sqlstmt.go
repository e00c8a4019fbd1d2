// Package sqlstmt keeps a database's fixed SQL statements prepared for the
// database's life, for the stores of host, the coding runtime and the
// platform alike.
//
// Parsing a statement costs SQLite more than running a small one: a profile
// of host's POST /input spent ~20% of its CPU in SQLite's parser before its
// statements were kept, and the platform's bearer-token lookup spent 9% of
// the platform's CPU there. database/sql prepares a kept statement again on
// each pooled connection the first time it runs there and then keeps it, so
// the cost is paid at most once per connection; PostgreSQL gets named
// prepared statements the same way.
//
// Only statements whose text is fixed belong here: the cache keeps every
// distinct text it sees until Close.
//
// The Tx methods prepare a statement they have not kept yet on another
// pooled connection than the transaction's, so the caller holds two at
// once. That is safe for a store with one writing goroutine (host's); a
// store with many concurrent transactions can empty the pool that way and
// deadlock until its busy timeout, so it runs its transactions' statements
// on the transaction directly (the platform's sqlstore does).
package sqlstmt

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Cache prepares each statement text once and hands the same *sql.Stmt to
// every caller. It is safe for concurrent use.
type Cache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// New returns an empty cache over db. It prepares nothing until a
// statement is first used.
func New(db *sql.DB) *Cache { return &Cache{db: db} }

// Stmt returns q prepared, preparing it on first use.
func (c *Cache) Stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.m[q]
	c.mu.Unlock()
	if ok {
		return st, nil
	}
	// Prepared outside the lock: preparing takes a pooled connection, and
	// a caller holding one must not wait on the lock behind it.
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("preparing %q: %w", q, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[q]; ok {
		st.Close()
		return old, nil
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st, nil
}

// Len reports how many statements are kept.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Close closes every kept statement. The cache may be used again after:
// it prepares anew.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}

// Exec runs q with its kept statement.
func (c *Cache) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := c.Stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// Query runs a read with its kept statement.
func (c *Cache) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := c.Stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRow runs a one-row read with its kept statement.
func (c *Cache) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := c.Stmt(ctx, q)
	if err != nil {
		// sql.Row carries no settable error; running the query unprepared
		// reports the same error through Scan.
		return c.db.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// TxExec runs q inside tx with its kept statement.
func (c *Cache) TxExec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	st, err := c.Stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

// TxQuery runs a read inside tx with its kept statement.
func (c *Cache) TxQuery(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	st, err := c.Stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
}

// TxQueryRow runs a one-row read inside tx with its kept statement.
func (c *Cache) TxQueryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	st, err := c.Stmt(ctx, q)
	if err != nil {
		return tx.QueryRowContext(ctx, q, args...)
	}
	return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}
