package host

import (
	"context"

	"github.com/agenthost/agenthost/internal/store"
)

// LiveSessions counts the sessions the engine holds in memory (with a run
// or subscribers), for tests that check nothing is left behind.
func LiveSessions(s *Server) int {
	return s.eng.core.LiveSessions()
}

// GateEnvWithStore is env with the host database st, as the host passes it
// to its GateBuilder, for benchmarks of the gate alone.
func GateEnvWithStore(env GateEnv, st store.Store) GateEnv {
	env.store = st
	return env
}

// GateEnvHasStore reports whether env carries the host database.
func GateEnvHasStore(env GateEnv) bool { return env.store != nil }

// WaitEngine waits until cond holds, checking it again at every change the
// host's engine announces (a commit of events, a session leaving memory, a
// run starting to wait for a worker): tests wait for the engine without
// sleeping.
func WaitEngine(ctx context.Context, s *Server, cond func() bool) error {
	for {
		changed := s.eng.core.Changed()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitingRuns counts the runs waiting for a worker.
func WaitingRuns(s *Server) int { return s.eng.core.WaitingTurns() }

// EngineChanged returns a channel closed at the host engine's next change.
func EngineChanged(s *Server) <-chan struct{} { return s.eng.core.Changed() }

// OpenAPIDoc is the document served at /openapi.json.
var OpenAPIDoc = openAPIDoc
