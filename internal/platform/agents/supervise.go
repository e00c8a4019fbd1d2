package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/runtime"
)

// supervise watches a healthy runtime; when it exits without the platform
// asking, the agent is restarted.
func (m *Manager) supervise(orgID string, in *instance) {
	m.track(func() {
		select {
		case <-in.done:
		case <-m.ctx.Done():
			return
		}
		if in.intentional.Load() || m.ctx.Err() != nil {
			return
		}
		m.restartCrashed(orgID, in)
	})
}

// backoff is the delay before the n-th restart in a row (n >= 1).
func (p RestartPolicy) backoff(n int) time.Duration {
	d := p.Backoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// restartCrashed restarts the agent of a runtime that died, with backoff,
// for as long as the agent should run. After Restart.Attempts failures in
// a row the agent is marked ERROR with the runtime's last output.
func (m *Manager) restartCrashed(orgID string, dead *instance) {
	id := dead.agentID
	crashes := dead.crashes
	if !dead.healthyAt.IsZero() && m.cfg.Now().Sub(dead.healthyAt) >= m.cfg.Restart.ResetAfter {
		crashes = 0
	}
	reason := fmt.Sprintf("the runtime exited (%s)%s", exitText(dead.exit), m.lastOutput(dead.handle))
	m.log.Warn("runtime exited unexpectedly", "agent", id, "exit", exitText(dead.exit), "crashes", crashes+1)
	m.observer().Crashed()
	ctx := context.WithoutCancel(m.ctx)
	for {
		crashes++
		unlock := m.lock(id)
		a, ok := m.stillWanted(ctx, orgID, id, dead)
		if !ok {
			unlock()
			return
		}
		m.mu.Lock()
		if m.live[id] == dead {
			delete(m.live, id) // its port stays held: the slot is the agent's
		}
		m.mu.Unlock()
		if crashes > m.cfg.Restart.Attempts {
			m.ports.Release(id)
			msg := fmt.Sprintf("the runtime kept failing; gave up after %d restarts. Last failure: %s", m.cfg.Restart.Attempts, reason)
			if err := m.setRuntime(&a, store.StatusError, msg); err != nil {
				m.log.Error("recording crashed agent", "agent", id, "err", err)
			}
			m.log.Error("agent marked ERROR after repeated runtime failures", "agent", id)
			unlock()
			return
		}
		unlock()

		select {
		case <-m.cfg.After(m.cfg.Restart.backoff(crashes)):
		case <-m.ctx.Done():
			return
		}

		unlock = m.lock(id)
		a, ok = m.stillWanted(ctx, orgID, id, nil)
		if !ok {
			m.log.Info("runtime not restarted: the agent was stopped or deleted during the backoff", "agent", id)
			unlock()
			return
		}
		port, err := m.ports.Reserve(id, a.Port)
		if err != nil {
			reason = err.Error()
			dead = nil
			unlock()
			continue
		}
		opCtx, done := m.operation(id)
		defer done()
		in, err := m.launch(opCtx, &a, port, m.cfg.StartTimeout)
		cancelled := opCtx.Err() != nil
		if !cancelled {
			m.observer().Restarted(err)
		}
		if err == nil {
			in.crashes = crashes
			if err := m.running(&a, in); err != nil {
				m.log.Error("recording restarted agent", "agent", id, "err", err)
			}
			m.log.Info("runtime restarted", "agent", id, "attempt", crashes)
			unlock()
			return
		}
		if cancelled {
			unlock()
			return
		}
		reason, dead = err.Error(), nil
		m.log.Warn("restarting runtime failed", "agent", id, "attempt", crashes, "err", err)
		unlock()
	}
}

// stillWanted reports whether the agent should still be running and no
// other runtime has taken over from dead (nil: none may be live).
func (m *Manager) stillWanted(ctx context.Context, orgID, id string, dead *instance) (store.Agent, bool) {
	a, err := m.st.GetAgent(ctx, orgID, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			m.log.Error("supervisor reading agent", "agent", id, "err", err)
		}
		return a, false
	}
	if a.Status != store.StatusRunning {
		return a, false
	}
	m.mu.Lock()
	cur, live := m.live[id]
	m.mu.Unlock()
	return a, !live || cur == dead
}

// reconcileConcurrency bounds how many agents Reconcile handles at once.
const reconcileConcurrency = 4

// Reconcile makes this node's persisted agents true after a platform
// start: runtimes that kept running are re-attached (driver Recover) and
// supervised again; agents that should run (RUNNING, or PROVISIONING when
// the previous process died mid-create) whose runtime is gone are started
// again, or marked ERROR if that fails, so no agent stays PROVISIONING; a
// runtime still running for a STOPPED or ERROR agent is stopped. It
// returns when every agent has been handled.
func (m *Manager) Reconcile(ctx context.Context) error {
	list, err := m.st.NodeAgents(ctx, m.cfg.Node)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	listed := m.removeOrphans(ctx)
	sem := make(chan struct{}, reconcileConcurrency)
	var wg sync.WaitGroup
	for _, a := range list {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			m.reconcileOne(a.OrgID, a.ID, listed[a.ID])
		}()
	}
	wg.Wait()
	return nil
}

// removeOrphans destroys the runtimes the driver knows of that belong to
// no agent at all (deleted while the platform was down, or started by a
// platform that died before recording the agent). Agents are created in
// the store before their runtime starts, so a runtime being provisioned
// right now is never taken for an orphan. It returns the other runtimes
// by agent id: one whose agent has no handle recorded was started by a
// platform that died before it could record it.
func (m *Manager) removeOrphans(ctx context.Context) map[string]*runtime.Handle {
	owned := map[string]*runtime.Handle{}
	l, ok := m.cfg.Driver.(runtime.Lister)
	if !ok {
		return owned
	}
	hs, err := l.List(ctx)
	if err != nil {
		m.log.Warn("reconcile: listing runtimes", "err", err)
		return owned
	}
	for _, h := range hs {
		_, err := m.st.FindAgent(ctx, h.ID)
		if !errors.Is(err, store.ErrNotFound) {
			owned[h.ID] = h
			continue
		}
		m.log.Info("reconcile: destroying a runtime no agent owns", "runtime", h.ID)
		if err := m.cfg.Driver.Destroy(ctx, h); err != nil {
			m.log.Warn("reconcile: destroying orphan runtime", "runtime", h.ID, "err", err)
		}
	}
	return owned
}

// reconcileOne reconciles one agent; listed is the runtime the driver
// knows of under its id, if any.
func (m *Manager) reconcileOne(orgID, id string, listed *runtime.Handle) {
	unlock := m.lock(id)
	defer unlock()
	ctx := context.WithoutCancel(m.ctx)
	a, err := m.st.GetAgent(ctx, orgID, id)
	if err != nil {
		return
	}
	m.mu.Lock()
	_, live := m.live[id]
	m.mu.Unlock()
	if live {
		return
	}
	h, herr := handleOf(a)
	if herr != nil {
		m.log.Warn("reconcile: unreadable runtime handle", "agent", id, "err", herr)
	}
	if h == nil && listed != nil {
		// The previous platform process started this runtime and died
		// before recording its handle: it is the agent's all the same.
		m.log.Info("reconcile: taking over a runtime the previous platform process started but never recorded", "agent", id)
		if raw, err := json.Marshal(listed); err == nil {
			h, a.Handle = listed, raw
		}
	}
	switch a.Status {
	case store.StatusStopped, store.StatusError:
		if h != nil && m.cfg.Driver.Recover(ctx, h) == nil {
			m.log.Info("reconcile: stopping a runtime left running", "agent", id, "status", a.Status)
			m.stopQuietly(h)
		}
		return
	case store.StatusRunning, store.StatusProvisioning:
	default:
		return
	}
	if a.Status == store.StatusProvisioning && a.InitialPrompt != "" {
		// The create that was interrupted never delivered its initial
		// prompt: deliver it once the runtime is up.
		defer m.initialPromptAfterCrash(a.OrgID, id)
	}
	if h != nil {
		if m.reattach(&a, h) {
			return
		}
	}
	port, err := m.ports.Reserve(id, a.Port)
	if err != nil {
		m.markError(&a, fmt.Sprintf("restarting after a platform restart: %v", err))
		return
	}
	timeout := m.cfg.StartTimeout
	if a.Status == store.StatusProvisioning {
		timeout = m.cfg.ProvisionTimeout
	}
	opCtx, done := m.operation(id)
	defer done()
	in, err := m.launch(opCtx, &a, port, timeout)
	if err != nil {
		m.ports.Release(id)
		if m.ctx.Err() == nil {
			m.markError(&a, err.Error())
		}
		return
	}
	m.log.Info("reconcile: started runtime", "agent", id)
	if err := m.running(&a, in); err != nil {
		m.log.Error("reconcile: recording running agent", "agent", id, "err", err)
	}
}

// reattach takes over a runtime a previous platform process started, if
// it is still there and healthy.
func (m *Manager) reattach(a *store.Agent, h *runtime.Handle) bool {
	ctx := context.WithoutCancel(m.ctx)
	if err := m.cfg.Driver.Recover(ctx, h); err != nil {
		if !errors.Is(err, runtime.ErrNotFound) {
			m.log.Warn("reconcile: recovering runtime failed; starting a new one", "agent", a.ID, "err", err)
		}
		return false
	}
	m.ports.Claim(a.ID, a.Port)
	in := m.watch(a.ID, h)
	opCtx, done := m.operation(a.ID)
	defer done()
	err := m.waitHealthy(opCtx, in, m.cfg.StartTimeout)
	if err != nil {
		m.log.Warn("reconcile: recovered runtime is not healthy; starting a new one", "agent", a.ID, "err", err)
		in.intentional.Store(true)
		m.stopQuietly(h)
		m.ports.Release(a.ID)
		return false
	}
	if err := m.running(a, in); err != nil {
		m.log.Error("reconcile: recording re-attached agent", "agent", a.ID, "err", err)
	}
	m.log.Info("reconcile: re-attached runtime", "agent", a.ID)
	return true
}

func (m *Manager) markError(a *store.Agent, msg string) {
	if err := m.setRuntime(a, store.StatusError, msg); err != nil {
		m.log.Error("recording agent error", "agent", a.ID, "err", err)
	}
}

// initialPromptAfterCrash delivers the initial prompt of an agent whose
// provisioning a dead platform process left unfinished, once the agent
// is RUNNING, unless its runtime already has a session (the prompt got
// there before the crash).
func (m *Manager) initialPromptAfterCrash(orgID, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 30*time.Second)
	defer cancel()
	a, err := m.st.GetAgent(ctx, orgID, id)
	if err != nil || a.Status != store.StatusRunning {
		return
	}
	c, err := m.Client(a)
	if err != nil {
		return
	}
	st, err := c.Status(ctx)
	if err != nil || len(st.Sessions) > 0 {
		return
	}
	if _, err := m.deliverInitialPrompt(ctx, a); err == nil {
		m.log.Info("reconcile: delivered the initial prompt of an interrupted create", "agent", id)
	}
}
