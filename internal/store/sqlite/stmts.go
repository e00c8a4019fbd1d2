package sqlite

import (
	"context"
	"database/sql"
)

// The store's fixed queries run through its sqlstmt.Cache (s.stmts), which
// keeps each prepared for the store's life; these name the four shapes the
// store uses.

// exec runs q inside tx with its kept statement.
func (s *Store) exec(tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	return s.stmts.TxExec(context.Background(), tx, q, args...)
}

// txQueryRow runs q inside tx with its kept statement.
func (s *Store) txQueryRow(tx *sql.Tx, q string, args ...any) *sql.Row {
	return s.stmts.TxQueryRow(context.Background(), tx, q, args...)
}

// query runs a read with its kept statement.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.stmts.Query(ctx, q, args...)
}

// queryRow runs a one-row read with its kept statement.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.stmts.QueryRow(ctx, q, args...)
}
