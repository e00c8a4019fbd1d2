package sqlitedb

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "x.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	migs := []string{"CREATE TABLE a (x INTEGER)", "ALTER TABLE a ADD COLUMN y TEXT"}
	if err := Migrate(ctx, db, migs); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db, migs); err != nil {
		t.Fatalf("second migrate must be a no-op: %v", err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	if _, err := db.Exec("INSERT INTO a (x, y) VALUES (1, 'a')"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := Migrate(ctx, db, migs[:1]); err == nil {
		t.Fatal("an older binary must refuse a newer schema")
	}
	// A failing migration leaves the schema and version where they were,
	// the good steps before it in the same run included.
	bad := append(migs, "CREATE TABLE b (z INTEGER)", "CREATE TABLE a (x INTEGER)")
	if err := Migrate(ctx, db, bad); err == nil {
		t.Fatal("want error from duplicate table")
	}
	var v int
	db.QueryRow("PRAGMA user_version").Scan(&v)
	if v != 2 {
		t.Fatalf("user_version = %d after failed migration, want 2", v)
	}
	if _, err := db.Exec("SELECT z FROM b"); err == nil {
		t.Fatal("table b of the failed run exists: the run was not rolled back as a whole")
	}
}

// TestFilesPrivate: the database and its WAL files are 0600 whatever the
// umask, and a database made readable before is made private again.
func TestFilesPrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "x.db")
	for range 2 {
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("CREATE TABLE IF NOT EXISTS a (x INTEGER); INSERT INTO a VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %04o, want 0600", p, fi.Mode().Perm())
			}
		}
		db.Close()
		os.Chmod(path, 0o644) // as an older agenthost left it
	}
}

// TestMigrateConcurrently: two processes opening a new database at once
// (`agenthost platform` starting while `agenthost platform token create`
// runs) both migrate it; the second must find the work done, not run the
// first migration again ("table already exists").
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	migs := []string{"CREATE TABLE a (x INTEGER)", "CREATE TABLE b (x INTEGER)", "ALTER TABLE a ADD COLUMN y TEXT"}
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "x.db")
		const n = 4
		errs := make(chan error, n)
		start := make(chan struct{})
		for range n {
			// One *sql.DB each, as separate processes have.
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			go func() {
				<-start
				errs <- Migrate(ctx, db, migs)
			}()
		}
		close(start)
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: concurrent Migrate: %v", round, err)
			}
		}
	}
}
