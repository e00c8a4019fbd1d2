package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/platform/store/postgres"
	"github.com/agenthost/agenthost/internal/platform/store/postgres/pgtest"
	"github.com/agenthost/agenthost/internal/platform/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Replicas starting together must not race on migrations.
func TestConcurrentMigrate(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
}

func TestWithSearchPath(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@h:5432/db?sslmode=disable": "postgres://u:p@h:5432/db?search_path=s1&sslmode=disable",
		"host=h dbname=db":                         "host=h dbname=db search_path=s1",
	} {
		if got := pgtest.WithSearchPath(in, "s1"); got != want {
			t.Errorf("WithSearchPath(%q) = %q, want %q", in, got, want)
		}
	}
}
