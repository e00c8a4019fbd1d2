package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/sqlitedb"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/internal/store/sqlite"
	"github.com/agenthost/agenthost/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), sqlite.FileName))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, store.Session{ID: "x", Status: store.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.CreateSession(ctx, store.Session{ID: "y"}); err == nil {
		t.Fatal("write after Close succeeded")
	}
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetSession(ctx, "x"); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateMessagesOutOfState opens a database of schema 3, whose
// sessions keep their messages inside the state blob, and finds them as
// rows, in order, with the blob keeping the rest.
func TestMigrateMessagesOutOfState(t *testing.T) {
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	ctx := context.Background()
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitedb.Migrate(ctx, db, sqlite.Migrations[:3]); err != nil {
		t.Fatal(err)
	}
	state := `{"session_id":"s1","messages":[{"id":"m1","role":"user","parts":[{"type":"text","text":"hi"}]},{"role":"assistant","parts":[]},{"id":"m3","role":"user","parts":[]}],"turn":1,"iteration":2}`
	if _, err := db.Exec(`INSERT INTO sessions (id, status, state, created_ms, updated_ms) VALUES ('s1', 'done', ?, 1, 1), ('s2', 'done', NULL, 1, 1)`, []byte(state)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := s.Messages(ctx, "s1")
	if err != nil || len(ms) != 3 || ms[0].ID != "m1" || ms[1].ID != "" || ms[2].ID != "m3" {
		t.Fatalf("messages: %+v %v", ms, err)
	}
	if !strings.Contains(string(ms[0].Data), `"text":"hi"`) {
		t.Fatalf("first message: %s", ms[0].Data)
	}
	ss, err := s.GetSession(ctx, "s1")
	if err != nil || strings.Contains(string(ss.State), "messages") || !strings.Contains(string(ss.State), `"iteration":2`) {
		t.Fatalf("state after the move: %s %v", ss.State, err)
	}
	if ss, err := s.GetSession(ctx, "s2"); err != nil || len(ss.State) != 0 {
		t.Fatalf("a session without state: %+v %v", ss, err)
	}
}
