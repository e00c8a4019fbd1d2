package sqlstmt_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/agenthost/agenthost/internal/sqlitedb"
	"github.com/agenthost/agenthost/internal/sqlstmt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestOnePreparedStatementPerText: however many callers ask at once, a text
// is kept once and every later caller gets that statement.
func TestOnePreparedStatementPerText(t *testing.T) {
	ctx := context.Background()
	c := sqlstmt.New(open(t))
	defer c.Close()
	const q = `SELECT v FROM kv WHERE k = $1`
	got := make([]*sql.Stmt, 16)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.Stmt(ctx, q)
			if err != nil {
				t.Error(err)
			}
			got[i] = st
		}()
	}
	wg.Wait()
	if c.Len() != 1 {
		t.Fatalf("kept %d statements for one text, want 1", c.Len())
	}
	for i, st := range got {
		if st != got[0] {
			t.Fatalf("caller %d got another statement than caller 0", i)
		}
	}
	if _, err := c.Stmt(ctx, `SELECT k FROM kv`); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 2 {
		t.Fatalf("kept %d statements for two texts, want 2", c.Len())
	}
}

// TestRunsThroughKeptStatements: every shape (plain and in a transaction)
// runs its statement and keeps it; a rolled-back transaction's write is gone.
func TestRunsThroughKeptStatements(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	c := sqlstmt.New(db)
	defer c.Close()
	const ins = `INSERT INTO kv (k, v) VALUES ($1, $2)`
	const get = `SELECT v FROM kv WHERE k = $1`
	if _, err := c.Exec(ctx, ins, "a", "1"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TxExec(ctx, tx, ins, "b", "2"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := c.TxQueryRow(ctx, tx, get, "b").Scan(&v); err != nil || v != "2" {
		t.Fatalf("in the transaction: %q, %v; want 2", v, err)
	}
	rows, err := c.TxQuery(ctx, tx, `SELECT k FROM kv ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for rows.Next() {
		var k string
		rows.Scan(&k)
		keys = append(keys, k)
	}
	rows.Close()
	if strings.Join(keys, ",") != "a,b" {
		t.Fatalf("keys in the transaction: %v, want a,b", keys)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, get, "b").Scan(&v); err != sql.ErrNoRows {
		t.Fatalf("after rollback: %q, %v; want sql.ErrNoRows", v, err)
	}
	if err := c.QueryRow(ctx, get, "a").Scan(&v); err != nil || v != "1" {
		t.Fatalf("a: %q, %v; want 1", v, err)
	}
	if n := c.Len(); n != 3 {
		t.Fatalf("kept %d statements, want 3 (insert, get, list)", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatal("Close kept statements")
	}
	// Used again after Close, the cache prepares anew.
	if err := c.QueryRow(ctx, get, "a").Scan(&v); err != nil || v != "1" {
		t.Fatalf("after Close: %q, %v; want 1", v, err)
	}
}

// TestBadStatement: a text the database refuses is an error naming it, and
// is not kept; QueryRow reports it through Scan.
func TestBadStatement(t *testing.T) {
	ctx := context.Background()
	c := sqlstmt.New(open(t))
	defer c.Close()
	const bad = `SELECT nope FROM missing`
	_, err := c.Exec(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Exec(bad) = %v, want an error naming the statement", err)
	}
	if _, err := c.Query(ctx, bad); err == nil {
		t.Fatal("Query(bad) succeeded")
	}
	var v string
	if err := c.QueryRow(ctx, bad).Scan(&v); err == nil {
		t.Fatal("QueryRow(bad).Scan succeeded")
	}
	if c.Len() != 0 {
		t.Fatalf("kept %d statements after only bad ones", c.Len())
	}
}

// BenchmarkQueryRow compares a one-row read through the kept statement with
// the same read parsed on every call (database/sql without Prepare), in the
// same run.
func BenchmarkQueryRow(b *testing.B) {
	ctx := context.Background()
	db := open(b)
	const q = `SELECT v FROM kv WHERE k = $1`
	if _, err := db.Exec(`INSERT INTO kv (k, v) VALUES ('a', '1')`); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, row func() *sql.Row) {
		var v string
		for b.Loop() {
			if err := row().Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("parsed", func(b *testing.B) { run(b, func() *sql.Row { return db.QueryRowContext(ctx, q, "a") }) })
	c := sqlstmt.New(db)
	defer c.Close()
	b.Run("kept", func(b *testing.B) { run(b, func() *sql.Row { return c.QueryRow(ctx, q, "a") }) })
}
