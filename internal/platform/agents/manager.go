// Package agents runs the platform's agents: it provisions each agent's
// runtime through a runtime.Driver, waits until the runtime answers
// /health, supervises it (restarting a crashed runtime with backoff, then
// marking the agent ERROR), starts, stops, restarts and deletes it, and
// after a platform restart reconciles the persisted agents with the
// runtimes that are really there.
//
// Lock order: an agent's lock (Manager.lock) is taken before Manager.mu;
// Manager.mu and the PortPool's mutex are never held across I/O.
package agents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/agenthost/agenthost/internal/platform/secrets"
	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/runtime"
)

// Errors of the manager, wrapped with details; the API maps each to its
// status.
var (
	ErrInvalid          = errors.New("invalid request")                                   // 400
	ErrState            = errors.New("agent is not in a state that allows this")          // 400
	ErrNotRunning       = errors.New("agent is not running")                              // 400
	ErrAgentLimit       = errors.New("agent limit reached for your plan")                 // 429
	ErrCapacity         = errors.New("concurrent agent cap reached; retry later")         // 503
	ErrStartFailed      = errors.New("runtime failed to start")                           // 503
	ErrStopFailed       = errors.New("runtime failed to stop")                            // 503
	ErrOtherNode        = errors.New("the agent's runtime runs on another platform node") // 503
	ErrProvisionTimeout = errors.New("agent provisioning timed out")                      // 504
)

// InvalidError is a request field the caller must fix.
type InvalidError struct {
	Field string
	Msg   string
}

// Error is "field: message", the text the API returns.
func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap makes InvalidError match ErrInvalid.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// RestartPolicy says how a crashed runtime is restarted.
type RestartPolicy struct {
	// Attempts is how many restarts in a row are tried before the agent is
	// marked ERROR.
	Attempts int
	// Backoff is the delay before the first restart; it doubles up to
	// MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// ResetAfter: a runtime that stayed up this long has its crash count
	// forgotten.
	ResetAfter time.Duration
}

// Change is a lifecycle change of an agent, reported to Config.OnChange.
type Change struct {
	Agent   store.Agent
	Deleted bool
}

// Config configures a Manager. Zero durations and limits take the defaults
// noted.
type Config struct {
	Store   store.Store
	Secrets *secrets.Service
	// Box seals the agents' control tokens.
	Box    *secrets.Box
	Driver runtime.Driver
	// Node names this platform process among replicas sharing a store;
	// it supervises and reconciles only its own agents. Default: hostname.
	Node string
	// Command is the runtime's argv; "{agentId}" and "{port}" in an argument
	// are replaced. Default: this executable with "serve --role coding".
	Command []string
	// InheritListener says Command takes its listening socket from the
	// driver (runtime.Spec.InheritListener), as agenthost's own runtime
	// does; it is set when Command is left to its default. A runtime of
	// the operator's own (--runtime-command) binds AGENTHOST_PORT itself.
	InheritListener bool
	// DefaultModel is used when a request names none. Default offline/demo.
	DefaultModel string
	// MaxAgentsPerOrg bounds an organization's agents (429); 0 = no limit.
	MaxAgentsPerOrg int
	// MaxRunning bounds the runtimes this process runs at once (503);
	// 0 = no limit.
	MaxRunning int
	// Ports is the loopback port range for runtimes. Default DefaultPorts.
	Ports PortRange
	// Resources are every runtime's limits (Spec.Resources); zero fields
	// take the driver's defaults. A non-zero NofileLimit also reaches the
	// runtime as AGENTHOST_NOFILE_LIMIT, for its tools.
	Resources runtime.Resources
	// DiskBytes caps each workspace (AGENTHOST_DISK_LIMIT, enforced by the
	// runtime); 0 leaves the runtime's default.
	DiskBytes int64
	// EgressAllow lists the hosts, addresses and CIDRs the tools may reach
	// beyond the public internet (AGENTHOST_EGRESS_ALLOW).
	EgressAllow []string
	// ModelEnv is given to every agent loop, never to its tools: the
	// operator's model keys and endpoints (OPENAI_API_KEY, ...). An
	// organisation's secret of the same name wins for its agents.
	ModelEnv map[string]string
	// EgressDeny lists addresses and CIDRs the tools may never reach,
	// even when public or allowed (AGENTHOST_EGRESS_DENY).
	EgressDeny []string
	// ProbePort reports whether a port is free; nil probes 127.0.0.1.
	ProbePort func(int) bool
	// ProvisionTimeout bounds a new agent's wait for health (60 s → 504);
	// StartTimeout a start or restart's (30 s → 503); StopTimeout is the
	// graceful stop before a kill (3 s).
	ProvisionTimeout, StartTimeout, StopTimeout time.Duration
	// HealthInterval is the /health polling period (20 ms: a runtime is
	// usually up within a few hundred milliseconds).
	HealthInterval time.Duration
	// Restart is the crash policy (3 attempts, 1 s doubling to 30 s, reset
	// after 5 min).
	Restart RestartPolicy
	// StopOnClose stops every runtime when the Manager closes. By default
	// runtimes keep running and the next platform process re-attaches.
	StopOnClose bool
	// Connect makes runtime clients. Required.
	Connect Connector
	// OnChange is called after every persisted lifecycle change; it must
	// not block.
	OnChange func(Change)
	// Observer hears of provisionings, crashes and restarts (the
	// platform's metrics); nil: nobody.
	Observer Observer
	Now      func() time.Time
	NewID    func() string
	Logger   *slog.Logger
	// HTTPClient polls /health. Default: 2 s timeout.
	HTTPClient *http.Client
	// After is the clock of the restart backoff (default time.After):
	// tests fire it instead of waiting it out.
	After func(time.Duration) <-chan time.Time
}

func (c *Config) setDefaults() error {
	if c.Store == nil || c.Secrets == nil || c.Box == nil || c.Driver == nil || c.NewID == nil {
		return errors.New("agents: Store, Secrets, Box, Driver and NewID are required")
	}
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if len(c.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("agents: finding the agenthost binary for the runtime command: %w", err)
		}
		c.Command = []string{exe, "serve", "--role", "coding"}
		c.InheritListener = true
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ProvisionTimeout, 60*time.Second)
	def(&c.StartTimeout, 30*time.Second)
	def(&c.StopTimeout, 3*time.Second)
	def(&c.HealthInterval, 20*time.Millisecond)
	def(&c.Restart.Backoff, time.Second)
	def(&c.Restart.MaxBackoff, 30*time.Second)
	def(&c.Restart.ResetAfter, 5*time.Minute)
	if c.Restart.Attempts <= 0 {
		c.Restart.Attempts = 3
	}
	if c.DefaultModel == "" {
		c.DefaultModel = "offline/demo"
	}
	if c.Ports == (PortRange{}) {
		c.Ports = DefaultPorts
	}
	if c.Connect == nil {
		return errors.New("agents: Config.Connect is required: the manager reaches each runtime through its control API client")
	}
	if c.OnChange == nil {
		c.OnChange = func(Change) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 2 * time.Second}
	}
	if c.After == nil {
		c.After = time.After
	}
	return nil
}

// Manager runs agents. Its methods take the organization id and treat
// another organization's agent as missing (store.ErrNotFound).
type Manager struct {
	cfg   Config
	st    store.Store
	log   *slog.Logger
	ports *PortPool

	ctx    context.Context // ends at Close: supervisors and launches stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	locks runtime.IDLocks // serializes lifecycle operations on one agent within this process

	mu      sync.Mutex
	live    map[string]*instance          // runtimes this process runs, by agent
	pending map[string]context.CancelFunc // in-flight launches, cancelled by Delete
	closed  bool
}

// New returns a Manager. Call Reconcile once the platform starts, and
// Close when it stops.
func New(cfg Config) (*Manager, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		cfg: cfg, st: cfg.Store, log: cfg.Logger, ports: NewPortPool(cfg.Ports, cfg.ProbePort),
		ctx: ctx, cancel: cancel,
		live: map[string]*instance{}, pending: map[string]context.CancelFunc{},
	}, nil
}

// DefaultModel is the platform-wide model of agents created without one
// in organizations that set no default of their own.
func (m *Manager) DefaultModel() string { return m.cfg.DefaultModel }

// lock serializes lifecycle operations on one agent within this process.
func (m *Manager) lock(id string) (unlock func()) { return m.locks.Lock(id) }

// track runs fn in a goroutine Close waits for; it returns false (and
// runs nothing) once the Manager is closing.
func (m *Manager) track(fn func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn()
	}()
	return true
}

// Get returns an agent of the organization.
func (m *Manager) Get(ctx context.Context, orgID, id string) (store.Agent, error) {
	return m.st.GetAgent(ctx, orgID, id)
}

// SetSessionPermissions records whether the agent's session pages may
// reply to its permission requests, and returns the agent.
func (m *Manager) SetSessionPermissions(ctx context.Context, orgID, id string, on bool) (store.Agent, error) {
	if err := m.st.SetSessionPermissions(ctx, orgID, id, on); err != nil {
		return store.Agent{}, err
	}
	return m.st.GetAgent(ctx, orgID, id)
}

// List returns the organization's agents, oldest first.
func (m *Manager) List(ctx context.Context, orgID string) ([]store.Agent, error) {
	return m.st.ListAgents(ctx, orgID)
}

// Client returns the control-API client of a RUNNING agent's runtime, or
// ErrNotRunning.
func (m *Manager) Client(a store.Agent) (RuntimeClient, error) {
	c, err := m.Control(a)
	if err != nil {
		return nil, err
	}
	return m.cfg.Connect(c.Endpoint, c.Token), nil
}

// RuntimeStatus asks a RUNNING agent's runtime for busy and sessions; any
// other agent is idle with no sessions.
func (m *Manager) RuntimeStatus(ctx context.Context, a store.Agent) (RuntimeStatus, error) {
	if a.Status != store.StatusRunning {
		return RuntimeStatus{Sessions: []Session{}}, nil
	}
	c, err := m.Client(a)
	if err != nil {
		return RuntimeStatus{Sessions: []Session{}}, err
	}
	return c.Status(ctx)
}

// setRuntime persists a lifecycle change of a and reports it.
func (m *Manager) setRuntime(a *store.Agent, status store.AgentStatus, errMsg string) error {
	a.Status, a.ErrorMsg, a.UpdatedAt = status, errMsg, m.cfg.Now()
	if status != store.StatusError {
		a.ErrorMsg = ""
	}
	err := m.st.UpdateAgentRuntime(context.WithoutCancel(m.ctx), a.OrgID, a.ID, store.AgentRuntime{
		Status: a.Status, ErrorMsg: a.ErrorMsg, Port: a.Port, Handle: a.Handle, Node: a.Node, UpdatedAt: a.UpdatedAt,
	})
	if err != nil {
		return fmt.Errorf("agent %s: recording %s: %w", a.ID, status, err)
	}
	m.cfg.OnChange(Change{Agent: *a})
	return nil
}

// Close stops supervising (and, with StopOnClose, stops the runtimes). By
// default runtimes keep running for the next platform process to recover.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	live := make([]*instance, 0, len(m.live))
	for _, in := range m.live {
		live = append(live, in)
	}
	m.mu.Unlock()
	if m.cfg.StopOnClose {
		for _, in := range live {
			in.intentional.Store(true)
			if err := m.cfg.Driver.Stop(ctx, in.handle, m.cfg.StopTimeout); err != nil {
				m.log.Warn("stopping runtime at shutdown", "agent", in.agentID, "err", err)
			}
		}
	}
	m.cancel()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
