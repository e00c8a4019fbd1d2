package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

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
