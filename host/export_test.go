package host

// LiveSessions counts the sessions the engine holds in memory (with a run
// or subscribers), for tests that check nothing is left behind.
func LiveSessions(s *Server) int {
	s.eng.mu.Lock()
	defer s.eng.mu.Unlock()
	return len(s.eng.live)
}
