package host

import "time"

// WithShutdownNotice has Serve call notice when its context ends, before it
// waits for the runs still going: with the grace period it gives them and
// their number, so a command can tell its operator what it waits for and
// for how long.
func WithShutdownNotice(notice func(grace time.Duration, runs int)) Option {
	return func(s *settings) { s.notice = notice }
}

// ActiveRuns is the number of runs going on now (each holds a worker): what
// a graceful shutdown waits for.
func (s *Server) ActiveRuns() int { return s.eng.core.ActiveRuns() }
