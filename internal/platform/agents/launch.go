package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/platform/secrets"
	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/runtime"
)

// Environment variables the platform gives every runtime, besides the
// driver's AGENTHOST_PORT and AGENTHOST_WORKSPACE. They override secrets of
// the same name.
const (
	EnvAgentID      = "AGENTHOST_AGENT_ID"
	EnvModel        = "AGENTHOST_MODEL"
	EnvControlToken = "AGENTHOST_CONTROL_TOKEN"
	EnvHiddenPrompt = "AGENTHOST_HIDDEN_PROMPT"
	// EnvToolEnv names, comma-separated, the variables the runtime hands
	// to its tools: the organisation's secrets, and nothing else of its
	// environment (not the control token, not the operator's model keys).
	EnvToolEnv = "AGENTHOST_TOOL_ENV"
	// EnvEgressAllow is Config.EgressAllow, comma-separated.
	EnvEgressAllow = "AGENTHOST_EGRESS_ALLOW"
	// EnvEgressDeny is Config.EgressDeny, comma-separated; drivers may
	// add to it (the Docker driver adds the engine host's addresses).
	EnvEgressDeny = "AGENTHOST_EGRESS_DENY"
	// EnvDiskLimit is Config.DiskBytes; EnvNofileLimit is
	// Config.Resources.NofileLimit.
	EnvDiskLimit   = "AGENTHOST_DISK_LIMIT"
	EnvNofileLimit = "AGENTHOST_NOFILE_LIMIT"
)

// Labels tie a runtime to its agent, organization and platform node, so a
// driver's reconciler can find runtimes nobody owns.
const (
	LabelAgent = "agenthost.agent"
	LabelOrg   = "agenthost.org"
	LabelNode  = "agenthost.node"
)

// errClosing is the exit of a runtime nobody watches because the Manager
// is closing.
var errClosing = errors.New("the platform is shutting down")

// maxLogChars bounds the runtime output quoted in an agent's errorMsg.
const maxLogChars = 2000

// instance is one started runtime of an agent.
type instance struct {
	agentID string
	handle  *runtime.Handle
	// done is closed when the runtime exited (or watching stopped); exit
	// is valid after.
	done chan struct{}
	exit runtime.ExitResult
	// healthyAt is when the runtime first answered /health.
	healthyAt time.Time
	// crashes counts the restarts in a row that led to this instance.
	crashes int
	// intentional is set before the platform stops the runtime on purpose,
	// so its exit is not taken for a crash.
	intentional atomic.Bool
}

func newControlToken() string {
	return ids.Token(32)
}

func controlAAD(agentID string) []byte { return []byte("control-token\x00" + agentID) }

// command expands the argv template for one agent.
func (m *Manager) command(a store.Agent, port int) []string {
	r := strings.NewReplacer("{agentId}", a.ID, "{port}", strconv.Itoa(port))
	out := make([]string, len(m.cfg.Command))
	for i, arg := range m.cfg.Command {
		out[i] = r.Replace(arg)
	}
	return out
}

// spec builds the runtime.Spec of an agent: its secrets, then the
// platform's settings on top.
func (m *Manager) spec(ctx context.Context, a store.Agent, port int) (runtime.Spec, error) {
	env, err := m.cfg.Secrets.Env(ctx, a.OrgID, a.ScopeID)
	if err != nil {
		return runtime.Spec{}, fmt.Errorf("agent %s: resolving secrets: %w", a.ID, err)
	}
	m.log.Debug("runtime environment", "agent", a.ID, "secrets", secrets.Keys(env))
	var toolEnv []string
	for _, k := range secrets.Keys(env) {
		if !strings.HasPrefix(k, "AGENTHOST_") {
			toolEnv = append(toolEnv, k)
		}
	}
	for k, v := range m.cfg.ModelEnv {
		if _, ok := env[k]; !ok && v != "" {
			env[k] = v // the agent loop's only: not in EnvToolEnv
		}
	}
	tok, err := m.cfg.Box.Open(a.ControlToken, controlAAD(a.ID))
	if err != nil {
		return runtime.Spec{}, fmt.Errorf("agent %s: control token: %w", a.ID, err)
	}
	if len(m.cfg.EgressAllow) > 0 {
		env[EnvEgressAllow] = strings.Join(m.cfg.EgressAllow, ",")
	}
	if len(m.cfg.EgressDeny) > 0 {
		env[EnvEgressDeny] = strings.Join(m.cfg.EgressDeny, ",")
	}
	if m.cfg.DiskBytes > 0 {
		env[EnvDiskLimit] = strconv.FormatInt(m.cfg.DiskBytes, 10)
	}
	if n := m.cfg.Resources.NofileLimit; n > 0 {
		env[EnvNofileLimit] = strconv.FormatInt(n, 10)
	}
	env[EnvAgentID] = a.ID
	env[EnvModel] = a.Model
	env[EnvControlToken] = string(tok)
	env[EnvToolEnv] = strings.Join(toolEnv, ",")
	if a.HiddenPrompt != "" {
		env[EnvHiddenPrompt] = a.HiddenPrompt
	} else {
		delete(env, EnvHiddenPrompt)
	}
	if len(a.MCPServers) > 0 {
		env[EnvMCPServers] = string(a.MCPServers)
	} else {
		delete(env, EnvMCPServers)
	}
	return runtime.Spec{
		ID:              a.ID,
		Labels:          map[string]string{LabelAgent: a.ID, LabelOrg: a.OrgID, LabelNode: m.cfg.Node},
		Port:            port,
		Command:         m.command(a, port),
		InheritListener: m.cfg.InheritListener,
		Env:             env,
		Resources:       m.cfg.Resources,
	}, nil
}

// launch starts a runtime for a on port and waits up to timeout for its
// /health. The handle is persisted (with a's current status) as soon as
// the driver returns it, so a platform that dies during the wait can
// recover the runtime. On failure the runtime is stopped and the error
// wraps ErrStartFailed or ErrProvisionTimeout and quotes its last output.
func (m *Manager) launch(ctx context.Context, a *store.Agent, port int, timeout time.Duration) (*instance, error) {
	spec, err := m.spec(ctx, *a, port)
	if err != nil {
		return nil, err
	}
	m.log.Info("starting runtime", "agent", a.ID, "org", a.OrgID, "port", port, "driver", m.cfg.Driver.Name())
	h, err := m.cfg.Driver.Start(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStartFailed, err)
	}
	raw, err := json.Marshal(h)
	if err != nil {
		m.stopQuietly(h)
		return nil, fmt.Errorf("agent %s: encoding handle: %w", a.ID, err)
	}
	// The node that launches a runtime owns it from now on.
	a.Port, a.Handle, a.Node = port, raw, m.cfg.Node
	if err := m.setRuntime(a, a.Status, a.ErrorMsg); err != nil {
		m.stopQuietly(h)
		return nil, err
	}
	in := m.watch(a.ID, h)
	if err := m.waitHealthy(ctx, in, timeout); err != nil {
		in.intentional.Store(true)
		m.stopQuietly(h)
		return nil, err
	}
	return in, nil
}

// watch starts the one goroutine that waits for the runtime to exit.
func (m *Manager) watch(agentID string, h *runtime.Handle) *instance {
	in := &instance{agentID: agentID, handle: h, done: make(chan struct{})}
	ok := m.track(func() {
		defer close(in.done)
		res, err := m.cfg.Driver.Wait(m.ctx, h)
		if err != nil {
			res.Err = err
			if m.ctx.Err() == nil {
				res.ExitCode = -1
			}
		}
		in.exit = res
	})
	if !ok { // closing: nobody watches; launch and reattach see the shutdown
		in.exit = runtime.ExitResult{ExitCode: -1, Err: errClosing}
		close(in.done)
	}
	return in
}

// waitHealthy polls the runtime's /health until it answers 2xx, the
// runtime exits, or timeout passes.
func (m *Manager) waitHealthy(ctx context.Context, in *instance, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := strings.TrimSuffix(in.handle.Endpoint, "/") + "/health"
	tick := time.NewTicker(m.cfg.HealthInterval)
	defer tick.Stop()
	for {
		if m.healthy(ctx, url) {
			in.healthyAt = m.cfg.Now()
			return nil
		}
		select {
		case <-in.done:
			if m.ctx.Err() != nil {
				return fmt.Errorf("%w: the platform is shutting down", ErrStartFailed)
			}
			return fmt.Errorf("%w: the runtime exited (%s) before answering /health%s", ErrStartFailed, exitText(in.exit), m.lastOutput(in.handle))
		case <-ctx.Done():
			if m.ctx.Err() != nil {
				return fmt.Errorf("%w: the platform is shutting down", ErrStartFailed)
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: the runtime did not answer /health within %s%s", ErrProvisionTimeout, timeout, m.lastOutput(in.handle))
			}
			return fmt.Errorf("%w: %w", ErrStartFailed, ctx.Err())
		case <-tick.C:
		}
	}
}

func (m *Manager) healthy(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := m.cfg.HTTPClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

func exitText(r runtime.ExitResult) string {
	if r.Err != nil {
		return fmt.Sprintf("exit code %d: %v", r.ExitCode, r.Err)
	}
	return fmt.Sprintf("exit code %d", r.ExitCode)
}

// lastOutput quotes the runtime's last log lines for an error message.
func (m *Manager) lastOutput(h *runtime.Handle) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 5*time.Second)
	defer cancel()
	st, err := m.cfg.Driver.Inspect(ctx, h)
	if err != nil || len(st.Logs) == 0 {
		return ""
	}
	out := strings.TrimSpace(strings.Join(st.Logs, "\n"))
	if len(out) > maxLogChars {
		out = "…" + out[len(out)-maxLogChars:]
	}
	if out == "" {
		return ""
	}
	return "; last output:\n" + out
}

// stopQuietly stops a runtime the platform is giving up on, logging
// failures: the caller is already reporting a more important error.
func (m *Manager) stopQuietly(h *runtime.Handle) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), m.cfg.StopTimeout+10*time.Second)
	defer cancel()
	if err := m.cfg.Driver.Stop(ctx, h, m.cfg.StopTimeout); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		m.log.Warn("stopping runtime", "runtime", h.ID, "err", err)
	}
}

// handleOf decodes an agent's persisted handle; nil when it has none.
func handleOf(a store.Agent) (*runtime.Handle, error) {
	if len(a.Handle) == 0 {
		return nil, nil
	}
	var h runtime.Handle
	if err := json.Unmarshal(a.Handle, &h); err != nil {
		return nil, fmt.Errorf("agent %s: runtime handle: %w", a.ID, err)
	}
	return &h, nil
}
