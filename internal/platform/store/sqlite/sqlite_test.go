package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/platform/store/sqlite"
	"github.com/agenthost/agenthost/internal/platform/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "platform.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "platform.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOrg(ctx, store.Org{ID: "o1", Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopening a migrated database: %v", err)
	}
	defer s.Close()
	if _, err := s.OrgByName(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
}
