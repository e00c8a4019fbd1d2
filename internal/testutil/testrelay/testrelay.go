// Package testrelay starts real relays for tests of the packages that talk
// to one (host, client, the command), so each test does not carry its own
// copy of the start-and-clean-up code.
package testrelay

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/agenthost/agenthost/relay/relayserver"
)

// Start starts a relay listening on addr ("127.0.0.1:0" for any free
// port), logging nowhere and checking its timeouts every 50 ms, and shuts
// it down when the test ends.
func Start(t testing.TB, addr string) *relayserver.Server {
	t.Helper()
	r, err := relayserver.New(relayserver.Config{Addr: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SweepInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	return r
}
