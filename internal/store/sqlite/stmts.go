package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// stmts holds the store's statements prepared once and reused for the
// store's life. SQLite parsing a statement costs more than running a small
// one (a profile of POST /input spent ~20% of its CPU in the parser before
// statements were kept), so every fixed query goes through here.
// database/sql prepares each statement again on each pooled connection the
// first time it runs there and keeps it, so the cost is paid at most once
// per connection.
type stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (p *stmts) get(ctx context.Context, q string) (*sql.Stmt, error) {
	p.mu.Lock()
	st, ok := p.m[q]
	p.mu.Unlock()
	if ok {
		return st, nil
	}
	// Prepared outside the lock: preparing takes a pooled connection, and
	// a caller holding one must not wait on the lock behind it.
	st, err := p.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("preparing %q: %w", q, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.m[q]; ok {
		st.Close()
		return old, nil
	}
	if p.m == nil {
		p.m = map[string]*sql.Stmt{}
	}
	p.m[q] = st
	return st, nil
}

func (p *stmts) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, st := range p.m {
		st.Close()
	}
	p.m = nil
}

// exec runs q inside tx with its kept statement.
func (s *Store) exec(tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	st, err := s.stmts.get(context.Background(), q)
	if err != nil {
		return nil, err
	}
	return tx.Stmt(st).Exec(args...)
}

// txQueryRow runs q inside tx with its kept statement.
func (s *Store) txQueryRow(tx *sql.Tx, q string, args ...any) *sql.Row {
	st, err := s.stmts.get(context.Background(), q)
	if err != nil {
		// sql.Row carries no settable error; running the query unprepared
		// reports the same error through Scan.
		return tx.QueryRow(q, args...)
	}
	return tx.Stmt(st).QueryRow(args...)
}

// query runs a read with its kept statement.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.stmts.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a one-row read with its kept statement.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := s.stmts.get(ctx, q)
	if err != nil {
		return s.db.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
