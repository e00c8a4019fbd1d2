package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/runtime"
)

// Request limits.
const (
	MaxNameLen = 100 // characters, as the seed says
	// MaxPromptLen bounds each prompt in bytes. The hidden prompt reaches
	// the runtime as an environment variable, which Linux caps at 128 KiB.
	MaxPromptLen = 100_000
	maxModelLen  = 200
)

// CheckModel checks that a model name has the form provider/model; field
// names the request field in the error.
func CheckModel(field, name string) error {
	provider, model, ok := strings.Cut(name, "/")
	if !ok || provider == "" || model == "" || len(name) > maxModelLen || strings.ContainsAny(name, " \t\r\n") {
		return &InvalidError{field, `must be "provider/model", e.g. anthropic/claude-sonnet-4-6`}
	}
	return nil
}

// CreateRequest is what POST /api/v1/agents asks for.
type CreateRequest struct {
	Name          string
	ScopeID       string // a scope by id…
	Scope         string // …or by name
	Model         string // empty: the default model
	InitialPrompt string
	HiddenPrompt  string
	// SessionPermissionsOff keeps the agent's session pages from replying
	// to its permission requests (sessionPermissions: false).
	SessionPermissionsOff bool
	// MCPServers are the agent's MCP servers (ParseMCPServers), passed to
	// its runtime as EnvMCPServers.
	MCPServers json.RawMessage
}

func (r *CreateRequest) validate() error {
	n := utf8.RuneCountInString(r.Name)
	switch {
	case strings.TrimSpace(r.Name) == "":
		return &InvalidError{"name", "is required"}
	case n > MaxNameLen:
		return &InvalidError{"name", fmt.Sprintf("must be 1-%d characters (got %d)", MaxNameLen, n)}
	}
	if r.Model != "" {
		if err := CheckModel("model", r.Model); err != nil {
			return err
		}
	}
	if len(r.InitialPrompt) > MaxPromptLen {
		return &InvalidError{"initialPrompt", fmt.Sprintf("must be at most %d bytes", MaxPromptLen)}
	}
	if len(r.HiddenPrompt) > MaxPromptLen {
		return &InvalidError{"hiddenPrompt", fmt.Sprintf("must be at most %d bytes", MaxPromptLen)}
	}
	if _, err := ParseMCPServers(r.MCPServers); err != nil {
		return err
	}
	return nil
}

// resolveScope finds the scope a request names, by id or name (both must
// agree when both are given). Another organization's scope is not found.
func (m *Manager) resolveScope(ctx context.Context, orgID string, r CreateRequest) (string, error) {
	var byID, byName string
	if r.ScopeID != "" {
		sc, err := m.st.GetScope(ctx, orgID, r.ScopeID)
		if errors.Is(err, store.ErrNotFound) {
			return "", &InvalidError{"scopeId", "scope not found"}
		}
		if err != nil {
			return "", err
		}
		byID = sc.ID
	}
	if r.Scope != "" {
		sc, err := m.st.ScopeByName(ctx, orgID, r.Scope)
		if errors.Is(err, store.ErrNotFound) {
			return "", &InvalidError{"scope", fmt.Sprintf("no scope named %q", r.Scope)}
		}
		if err != nil {
			return "", err
		}
		byName = sc.ID
	}
	if byID != "" && byName != "" && byID != byName {
		return "", &InvalidError{"scope", "names a different scope than scopeId"}
	}
	if byID != "" {
		return byID, nil
	}
	return byName, nil
}

// admit gives an agent a runtime slot: a port, within the running cap.
func (m *Manager) admit(id string, prefer int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, fmt.Errorf("%w: the platform is shutting down", ErrStartFailed)
	}
	if m.cfg.MaxRunning > 0 && !m.ports.Holds(id) && m.ports.Len() >= m.cfg.MaxRunning {
		return 0, fmt.Errorf("%w (%d running)", ErrCapacity, m.cfg.MaxRunning)
	}
	return m.ports.Reserve(id, prefer)
}

// operation is the context of a launch: it outlives the request that
// asked for it (a client that hangs up does not leave a half-started
// runtime), ends with the Manager, and is cancelled by Delete. Close waits
// for operations to end, so none touches the store after it is closed.
func (m *Manager) operation(id string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(m.ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		cancel()
		return ctx, func() {}
	}
	m.pending[id] = cancel
	m.wg.Add(1)
	return ctx, func() {
		m.mu.Lock()
		delete(m.pending, id)
		m.mu.Unlock()
		cancel()
		m.wg.Done()
	}
}

// Create provisions a new agent: it records it PROVISIONING, starts its
// runtime, waits up to ProvisionTimeout for /health and returns it RUNNING,
// with the session its initial prompt opened (when the runtime client can
// deliver it).
func (m *Manager) Create(ctx context.Context, orgID string, req CreateRequest) (store.Agent, []Session, error) {
	if err := req.validate(); err != nil {
		return store.Agent{}, nil, err
	}
	scopeID, err := m.resolveScope(ctx, orgID, req)
	if err != nil {
		return store.Agent{}, nil, err
	}
	model := req.Model
	if model == "" {
		org, err := m.st.OrgByID(ctx, orgID)
		if err != nil {
			return store.Agent{}, nil, err
		}
		model = org.DefaultModel
	}
	if model == "" {
		model = m.cfg.DefaultModel
	}
	id := m.cfg.NewID()
	port, err := m.admit(id, 0)
	if err != nil {
		return store.Agent{}, nil, err
	}
	now := m.cfg.Now()
	a := store.Agent{
		ID: id, OrgID: orgID, Name: req.Name, ScopeID: scopeID, Model: model,
		InitialPrompt: req.InitialPrompt, HiddenPrompt: req.HiddenPrompt, SessionPermissionsOff: req.SessionPermissionsOff,
		MCPServers: compactJSON(req.MCPServers),
		Status:     store.StatusProvisioning, Port: port, Node: m.cfg.Node,
		ControlToken: m.cfg.Box.Seal([]byte(newControlToken()), controlAAD(id)),
		CreatedAt:    now, UpdatedAt: now,
	}
	// The agent's lock is taken before its record exists, so a reconcile
	// running meanwhile (it sees a PROVISIONING agent that is not live yet)
	// waits for this launch instead of starting a second runtime.
	unlock := m.lock(id)
	if err := m.st.CreateAgent(ctx, a, m.cfg.MaxAgentsPerOrg); err != nil {
		unlock()
		m.ports.Release(id)
		switch {
		case errors.Is(err, store.ErrLimit):
			return store.Agent{}, nil, fmt.Errorf("%w (%d agents per organization)", ErrAgentLimit, m.cfg.MaxAgentsPerOrg)
		case errors.Is(err, store.ErrNotFound):
			return store.Agent{}, nil, &InvalidError{"scopeId", "scope not found"}
		}
		return store.Agent{}, nil, err
	}
	m.cfg.OnChange(Change{Agent: a})

	opCtx, done := m.operation(id)
	defer done()
	began := time.Now()
	in, err := m.launch(opCtx, &a, port, m.cfg.ProvisionTimeout)
	m.observer().Provisioned(time.Since(began), err)
	cancelled := opCtx.Err() != nil && m.ctx.Err() == nil
	if err != nil {
		m.ports.Release(id)
		switch {
		case cancelled:
			err = fmt.Errorf("agent %s was deleted while it was being provisioned: %w", id, store.ErrNotFound)
		case m.ctx.Err() != nil:
			// Left PROVISIONING: the next platform process reconciles it.
		default:
			if serr := m.setRuntime(&a, store.StatusError, err.Error()); serr != nil {
				m.log.Error("recording failed provisioning", "agent", id, "err", serr)
			}
		}
		unlock()
		return a, nil, err
	}
	err = m.running(&a, in)
	unlock()
	if err != nil {
		return a, nil, err
	}
	sessions := []Session{}
	if req.InitialPrompt != "" {
		if s, err := m.deliverInitialPrompt(ctx, a); err == nil {
			sessions = append(sessions, s)
		}
	}
	return a, sessions, nil
}

func (m *Manager) deliverInitialPrompt(ctx context.Context, a store.Agent) (Session, error) {
	c, err := m.Client(a)
	if err == nil {
		var s Session
		if s, err = c.Prompt(ctx, "", a.InitialPrompt); err == nil {
			return s, nil
		}
	}
	m.log.Warn("initial prompt not delivered", "agent", a.ID, "err", err)
	return Session{}, err
}

// running records a healthy runtime and supervises it.
func (m *Manager) running(a *store.Agent, in *instance) error {
	m.mu.Lock()
	m.live[a.ID] = in
	m.mu.Unlock()
	if err := m.setRuntime(a, store.StatusRunning, ""); err != nil {
		return err
	}
	m.supervise(a.OrgID, in)
	return nil
}

// Start starts a STOPPED agent; started is false when it was already
// RUNNING.
func (m *Manager) Start(ctx context.Context, orgID, id string) (a store.Agent, started bool, err error) {
	if a, err := m.refuseProvisioning(ctx, orgID, id, "started"); err != nil {
		return a, false, err
	}
	unlock := m.lock(id)
	defer unlock()
	if a, err = m.st.GetAgent(ctx, orgID, id); err != nil {
		return a, false, err
	}
	switch a.Status {
	case store.StatusRunning:
		return a, false, nil
	case store.StatusStopped:
	default:
		return a, false, fmt.Errorf("%w: the agent is %s; only a STOPPED agent can be started", ErrState, a.Status)
	}
	err = m.startLocked(&a)
	return a, err == nil, err
}

// refuseProvisioning answers at once for an agent that is being
// provisioned, instead of queueing behind the create that holds its lock
// for up to ProvisionTimeout. The check under the lock still decides for
// every other state.
func (m *Manager) refuseProvisioning(ctx context.Context, orgID, id, verb string) (store.Agent, error) {
	a, err := m.st.GetAgent(ctx, orgID, id)
	if err != nil {
		return a, err
	}
	if a.Status == store.StatusProvisioning {
		return a, fmt.Errorf("%w: the agent is PROVISIONING; it can be %s once it is RUNNING or STOPPED", ErrState, verb)
	}
	return a, nil
}

// startLocked starts a's runtime and waits up to StartTimeout for it.
// A runtime that fails to come up leaves the agent ERROR.
func (m *Manager) startLocked(a *store.Agent) error {
	port, err := m.admit(a.ID, a.Port)
	if err != nil {
		return err
	}
	opCtx, done := m.operation(a.ID)
	defer done()
	in, err := m.launch(opCtx, a, port, m.cfg.StartTimeout)
	cancelled := opCtx.Err() != nil
	if err != nil {
		m.ports.Release(a.ID)
		if !cancelled {
			if serr := m.setRuntime(a, store.StatusError, err.Error()); serr != nil {
				m.log.Error("recording failed start", "agent", a.ID, "err", serr)
			}
		}
		if errors.Is(err, ErrProvisionTimeout) { // a start that times out is 503, not 504
			return fmt.Errorf("%w: %s", ErrStartFailed, strings.TrimPrefix(err.Error(), ErrProvisionTimeout.Error()+": "))
		}
		return err
	}
	return m.running(a, in)
}

// Stop stops a RUNNING agent (gracefully for StopTimeout, then killed);
// stopped is false when it was already STOPPED.
func (m *Manager) Stop(ctx context.Context, orgID, id string) (a store.Agent, stopped bool, err error) {
	if a, err := m.refuseProvisioning(ctx, orgID, id, "stopped"); err != nil {
		return a, false, err
	}
	unlock := m.lock(id)
	defer unlock()
	if a, err = m.st.GetAgent(ctx, orgID, id); err != nil {
		return a, false, err
	}
	switch a.Status {
	case store.StatusStopped:
		return a, false, nil
	case store.StatusRunning:
	default:
		return a, false, fmt.Errorf("%w: the agent is %s; only a RUNNING agent can be stopped", ErrState, a.Status)
	}
	if err := m.stopLocked(a); err != nil {
		return a, false, err
	}
	err = m.setRuntime(&a, store.StatusStopped, "")
	return a, err == nil, err
}

// stopLocked stops a's runtime, if any, and frees its slot. A runtime
// another node runs is that node's to stop: its driver handle may mean
// nothing here (a process on another host).
func (m *Manager) stopLocked(a store.Agent) error {
	if a.Node != m.cfg.Node {
		return fmt.Errorf("%w (%q; this is %q): send the request there", ErrOtherNode, a.Node, m.cfg.Node)
	}
	m.mu.Lock()
	in := m.live[a.ID]
	m.mu.Unlock()
	h, err := handleOf(a)
	if in != nil {
		in.intentional.Store(true)
		h, err = in.handle, nil
	}
	if err != nil {
		return err
	}
	if h != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), m.cfg.StopTimeout+10*time.Second)
		defer cancel()
		if err := m.cfg.Driver.Stop(ctx, h, m.cfg.StopTimeout); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			if in != nil {
				in.intentional.Store(false)
			}
			return fmt.Errorf("%w: %w", ErrStopFailed, err)
		}
	}
	m.forget(a.ID, in)
	return nil
}

// forget drops a's runtime from this process: it is no longer live and
// holds no port.
func (m *Manager) forget(id string, in *instance) {
	m.mu.Lock()
	if cur := m.live[id]; cur == in || in == nil {
		delete(m.live, id)
	}
	m.mu.Unlock()
	m.ports.Release(id)
}

// Restart stops a RUNNING agent and starts it again, or starts a STOPPED
// one.
func (m *Manager) Restart(ctx context.Context, orgID, id string) (store.Agent, error) {
	if a, err := m.refuseProvisioning(ctx, orgID, id, "restarted"); err != nil {
		return a, err
	}
	unlock := m.lock(id)
	defer unlock()
	a, err := m.st.GetAgent(ctx, orgID, id)
	if err != nil {
		return a, err
	}
	switch a.Status {
	case store.StatusRunning:
		if err := m.stopLocked(a); err != nil {
			return a, err
		}
	case store.StatusStopped:
	default:
		return a, fmt.Errorf("%w: the agent is %s; only a RUNNING or STOPPED agent can be restarted", ErrState, a.Status)
	}
	err = m.startLocked(&a)
	return a, err
}

// Delete destroys an agent's runtime (workspace included) and its record,
// whatever its state; a provisioning in progress is cancelled.
func (m *Manager) Delete(ctx context.Context, orgID, id string) error {
	if _, err := m.st.GetAgent(ctx, orgID, id); err != nil {
		return err
	}
	m.mu.Lock()
	if cancel := m.pending[id]; cancel != nil {
		cancel()
	}
	m.mu.Unlock()
	unlock := m.lock(id)
	defer unlock()
	a, err := m.st.GetAgent(ctx, orgID, id)
	if err != nil {
		return err
	}
	m.mu.Lock()
	in := m.live[id]
	m.mu.Unlock()
	h, err := handleOf(a)
	if in != nil {
		in.intentional.Store(true)
		h, err = in.handle, nil
	}
	if err != nil {
		m.log.Warn("deleting agent with an unreadable handle", "agent", id, "err", err)
	}
	if h != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), m.cfg.StopTimeout+30*time.Second)
		defer cancel()
		if err := m.cfg.Driver.Destroy(dctx, h); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			if in != nil {
				in.intentional.Store(false)
			}
			return fmt.Errorf("%w: destroying the runtime: %w", ErrStopFailed, err)
		}
	}
	m.forget(id, in)
	if err := m.st.DeleteAgent(context.WithoutCancel(ctx), orgID, id); err != nil {
		return err
	}
	m.log.Info("agent deleted", "agent", id, "org", orgID)
	m.cfg.OnChange(Change{Agent: a, Deleted: true})
	return nil
}
