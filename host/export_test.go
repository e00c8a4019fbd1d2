package host

import "github.com/agenthost/agenthost/internal/store"

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
