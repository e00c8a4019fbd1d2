package host

// LiveSessions counts the sessions the engine holds in memory (with a run
// or subscribers), for tests that check nothing is left behind.
func LiveSessions(s *Server) int {
	return s.eng.core.LiveSessions()
}
