package agents

import (
	"fmt"
	"strings"

	"github.com/agenthost/agenthost/internal/platform/store"
)

// Control is how the platform reaches one runtime's control API: the
// runtime's base URL and the bearer token it expects on /control routes.
// The token is a secret: never log or return it.
type Control struct {
	Endpoint string // e.g. http://127.0.0.1:20001, no trailing slash
	Token    string
}

// Control returns the control-API address of a RUNNING agent's runtime:
// ErrNotRunning for any other agent, ErrOtherNode when another platform
// node runs it (its endpoint means nothing here).
func (m *Manager) Control(a store.Agent) (Control, error) {
	if a.Status != store.StatusRunning || len(a.Handle) == 0 {
		return Control{}, fmt.Errorf("%w (status %s)", ErrNotRunning, a.Status)
	}
	if a.Node != m.cfg.Node {
		return Control{}, fmt.Errorf("%w (%q; this is %q)", ErrOtherNode, a.Node, m.cfg.Node)
	}
	h, err := handleOf(a)
	if err != nil {
		return Control{}, err
	}
	tok, err := m.cfg.Box.Open(a.ControlToken, controlAAD(a.ID))
	if err != nil {
		return Control{}, fmt.Errorf("agent %s: control token: %w", a.ID, err)
	}
	return Control{Endpoint: strings.TrimSuffix(h.Endpoint, "/"), Token: string(tok)}, nil
}

// Node is the name of this platform node among the replicas.
func (m *Manager) Node() string { return m.cfg.Node }
