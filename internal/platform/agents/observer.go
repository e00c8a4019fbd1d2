package agents

import "time"

// Observer hears of the lifecycle events the platform's metrics count
// (internal/obs, docs/operations.md). Its methods are called on the
// lifecycle's goroutines and must not block.
type Observer interface {
	// Provisioned: a new agent's runtime answered its health check after
	// d, or failed to (err).
	Provisioned(d time.Duration, err error)
	// Crashed: a runtime exited without being asked to.
	Crashed()
	// Restarted: a crashed runtime was started again (err nil), or the
	// attempt failed.
	Restarted(err error)
}

type nopObserver struct{}

func (nopObserver) Provisioned(time.Duration, error) {}
func (nopObserver) Crashed()                         {}
func (nopObserver) Restarted(error)                  {}

func (m *Manager) observer() Observer {
	if m.cfg.Observer == nil {
		return nopObserver{}
	}
	return m.cfg.Observer
}
