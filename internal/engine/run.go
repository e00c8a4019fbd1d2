package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
)

// Input is a user message for a session.
type Input struct {
	// SessionID names the session. Start creates it when it does not
	// exist; Enqueue creates a session named NewSessionID when SessionID
	// is empty, and refuses an unknown one (ErrNotFound).
	SessionID    string
	NewSessionID string
	// Owner is who the session belongs to (host: the caller's address).
	Owner string
	// Message is the user message; its ID and Created are filled in when
	// empty.
	Message llm.Message
	// Prompt is recorded as the session's latest prompt.
	Prompt string
	// Attended: a person can answer the turn's approvals and questions.
	Attended bool
	// Replace runs the turn on this conversation instead of the stored
	// one, which it replaces (a host client's copy that won the merge).
	Replace *State
	// Data is the front end's, for its policy (Turn.Data).
	Data any
}

// Handle is a turn started by Start.
type Handle struct {
	SessionID string
	done      chan struct{}
	out       Outcome
	state     *State
}

// Done is closed once the turn ended and its end is recorded.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Outcome is how the turn ended; valid once Done is closed.
func (h *Handle) Outcome() Outcome { return h.out }

// State is the session after the turn; valid once Done is closed.
func (h *Handle) State() *State { return h.state }

// turnInput is an accepted input waiting for or running its turn.
type turnInput struct {
	in  Input
	msg llm.Message
}

func (e *Engine) prepare(in Input) *turnInput {
	m := in.Message
	m.Role = llm.RoleUser
	if m.ID == "" {
		m.ID = agent.NewMessageID()
	}
	if m.Created == 0 {
		m.Created = e.now().UnixMilli()
	}
	return &turnInput{in: in, msg: m}
}

func newRun(parent context.Context) *activeRun {
	ctx, cancel := context.WithCancelCause(parent)
	return &activeRun{ctx: ctx, cancel: cancel}
}

// Start runs a turn now: it refuses a session that is busy (ErrBusy),
// waits for a worker while ctx lasts (ErrOverloaded past the queue),
// records the input and starts the turn detached from ctx. sub, if not
// nil and not already following the session, is attached before the
// turn's first event.
func (e *Engine) Start(ctx context.Context, in Input, sub *Subscriber) (*Handle, error) {
	if e.closing.Load() {
		return nil, ErrShuttingDown
	}
	ls := e.acquire(in.SessionID, in.Owner)
	ls.mu.Lock()
	if ls.worker {
		ls.mu.Unlock()
		e.release(ls)
		return nil, ErrBusy
	}
	run := newRun(e.base)
	ls.run = run
	ls.worker, ls.workerDone = true, make(chan struct{})
	ls.owner = in.Owner
	ls.mu.Unlock()
	e.setWorker(ls, true)
	attach := sub != nil && sub.ls != ls
	if attach {
		ls.smu.Lock()
		ls.subs[sub] = struct{}{}
		ls.smu.Unlock()
		// The subscriber holds its own reference, released by Unsubscribe.
		e.acquire(ls.id, in.Owner)
		sub.ls = ls
	}
	abandon := func() {
		ls.mu.Lock()
		ls.run, ls.worker = nil, false
		close(ls.workerDone)
		ls.mu.Unlock()
		run.cancel(nil)
		e.setWorker(ls, false)
		e.release(ls)
		if attach {
			e.Unsubscribe(sub)
		}
	}
	select {
	case e.slots <- struct{}{}:
	default:
		if e.waiting.Add(1) > int64(e.cfg.Queue) {
			e.waiting.Add(-1)
			abandon()
			return nil, ErrOverloaded
		}
		e.notify()
		select {
		case e.slots <- struct{}{}:
			e.waiting.Add(-1)
		case <-ctx.Done():
			e.waiting.Add(-1)
			abandon()
			return nil, ctx.Err()
		}
	}
	// Shutdown may have begun while this turn waited; workers are counted
	// under e.mu so that Shutdown waits for every one it let in.
	e.mu.Lock()
	if e.shut {
		e.mu.Unlock()
		<-e.slots
		abandon()
		return nil, ErrShuttingDown
	}
	e.workers.Add(1)
	e.mu.Unlock()
	ti := e.prepare(in)
	t, err := e.begin(ls, run, ti, true)
	if err != nil {
		<-e.slots
		e.workers.Done()
		abandon()
		return nil, fmt.Errorf("recording the session: %w", err)
	}
	h := &Handle{SessionID: ls.id, done: make(chan struct{})}
	go e.drive(ls, t, ti, h)
	return h, nil
}

// Accepted is Enqueue's answer.
type Accepted struct {
	SessionID string
	MessageID string
	// Queued: the input waits behind turns before it.
	Queued bool
}

// Enqueue accepts an input: it is committed before Enqueue returns and
// runs after the session's turns before it, when a worker is free; a
// restart does not lose it.
func (e *Engine) Enqueue(ctx context.Context, in Input) (Accepted, error) {
	if e.closing.Load() {
		return Accepted{}, ErrShuttingDown
	}
	id, create := in.SessionID, in.SessionID == ""
	if create {
		id = in.NewSessionID
		if id == "" {
			return Accepted{}, errors.New("engine: Enqueue without a session id")
		}
	} else if _, err := e.st.GetSession(ctx, id); err != nil {
		return Accepted{}, err
	}
	ti := e.prepare(in)
	ls := e.acquire(id, in.Owner)
	defer e.release(ls)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	now := e.now()
	c := store.Change{Inputs: []store.Input{{ID: ti.msg.ID, SessionID: id, Data: mustJSON(ti.msg), State: store.InputQueued, Created: now}}}
	if create {
		row := &store.Session{ID: id, Owner: in.Owner, Status: store.StatusDone, Created: now, Updated: now, State: meta(&State{})}
		c.Create = row
		c.Events = e.events(id, SessionCreated{SessionID: id, Time: now})
		ls.row, ls.state = row, &State{Messages: []llm.Message{}}
	}
	if err := ls.rec.commit(c); err != nil {
		if create {
			ls.row, ls.state = nil, nil
		}
		return Accepted{}, fmt.Errorf("storing the message: %w", err)
	}
	queued := ls.worker
	ls.queue = append(ls.queue, ti)
	e.startWorkerLocked(ls)
	return Accepted{SessionID: id, MessageID: ti.msg.ID, Queued: queued}, nil
}

// startWorkerLocked starts a worker for ls's queue unless one runs or the
// engine is stopping. ls.mu is held.
func (e *Engine) startWorkerLocked(ls *live) {
	if ls.worker || len(ls.queue) == 0 {
		return
	}
	e.mu.Lock()
	if e.shut {
		e.mu.Unlock()
		return
	}
	e.workers.Add(1)
	e.busyN++
	e.idleLocked()
	ls.refs++ // the worker's
	e.mu.Unlock()
	ls.worker, ls.workerDone = true, make(chan struct{})
	go e.drive(ls, nil, nil, nil)
}

// drive runs ls's turns: first (already begun, holding a slot) if set,
// then the queue, until it is empty or the engine stops. h, if set, is
// first's handle.
func (e *Engine) drive(ls *live, first *Turn, firstIn *turnInput, h *Handle) {
	defer e.workers.Done()
	t, ti := first, firstIn
	for {
		slotted := true
		if t == nil {
			ls.mu.Lock()
			if len(ls.queue) == 0 || e.closing.Load() {
				done := e.stopWorkerLocked(ls)
				ls.mu.Unlock()
				e.finishWorker(ls, done)
				return
			}
			ti = ls.queue[0]
			ls.queue = ls.queue[1:]
			run := newRun(e.base)
			ls.run = run
			ls.mu.Unlock()
			select {
			case e.slots <- struct{}{}:
			case <-run.ctx.Done():
				// Aborted while waiting for a worker: the input is
				// recorded and ends as an aborted turn, without a worker.
				slotted = false
			case <-e.closed:
				// Stopping: the input stays queued for the next start.
				ls.mu.Lock()
				ls.run = nil
				done := e.stopWorkerLocked(ls)
				ls.mu.Unlock()
				run.cancel(nil)
				e.finishWorker(ls, done)
				return
			}
			var err error
			if t, err = e.begin(ls, run, ti, false); err != nil {
				e.log.Error("starting a queued turn", "session", ls.id, "err", err)
				if slotted {
					<-e.slots
				}
				ls.mu.Lock()
				ls.run = nil
				ls.mu.Unlock()
				run.cancel(nil)
				continue
			}
		}
		var out Outcome
		if slotted {
			out = e.execute(t, ti)
			<-e.slots
		} else {
			out = Outcome{Status: store.StatusInterrupted, Result: agent.StatusAborted, Err: context.Cause(t.run.ctx), MessageID: ti.msg.ID}
		}
		if e.end(ls, t, ti, out, h) {
			return
		}
		t, ti, h = nil, nil, nil
	}
}

// stopWorkerLocked marks ls without a worker and returns the channel to
// close once the worker has let go (finishWorker); a new worker may start
// in between, with a channel of its own. ls.mu is held.
func (e *Engine) stopWorkerLocked(ls *live) chan struct{} {
	ls.worker = false
	e.mu.Lock()
	e.busyN--
	e.idleLocked()
	e.mu.Unlock()
	e.notify()
	return ls.workerDone
}

// finishWorker lets go of a stopped worker's session.
func (e *Engine) finishWorker(ls *live, done chan struct{}) {
	close(done)
	e.release(ls)
}

// Turn is a turn in progress, as policies see it.
type Turn struct {
	e   *Engine
	ls  *live
	run *activeRun
	// SessionID and Owner are the session's; Attended says a person can
	// answer; Data is the input's front-end data.
	SessionID string
	Owner     string
	Attended  bool
	Data      any

	// logCtx is the context TurnContext made: the turn's log lines carry
	// what the front end put in it (the request id of the request that
	// sent the input).
	logCtx context.Context

	mu      sync.Mutex
	row     store.Session     // the session row as this turn last wrote it
	callMsg map[string]string // tool call id → assistant message id
	start   time.Time
}

// logContext is the context the turn's log lines are written with.
func (t *Turn) logContext() context.Context {
	if t.logCtx != nil {
		return t.logCtx
	}
	return context.Background()
}

// MessageID returns the id of the assistant message holding a tool call
// of this turn ("" if unknown).
func (t *Turn) MessageID(callID string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.callMsg[callID]
}

// saveRow updates the turn's copy of the session row and returns it.
func (t *Turn) saveRow(fn func(r *store.Session)) *store.Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	fn(&t.row)
	cp := t.row
	return &cp
}

// begin loads the session and records the input as the turn's start.
func (e *Engine) begin(ls *live, run *activeRun, ti *turnInput, mayCreate bool) (*Turn, error) {
	ctx := context.Background()
	now := e.now()
	var c store.Change
	if ls.row == nil {
		row, err := e.st.GetSession(ctx, ls.id)
		switch {
		case err == nil:
			ls.row = &row
		case mayCreate && errors.Is(err, store.ErrNotFound):
			ls.row = &store.Session{ID: ls.id, Owner: ti.in.Owner, Created: now}
			c.Create = ls.row
		default:
			return nil, err
		}
	}
	switch {
	case ti.in.Replace != nil:
		st := *ti.in.Replace
		st.Messages = append([]llm.Message(nil), st.Messages...)
		ls.state = &st
		c.Replace = true
		for _, m := range st.Messages {
			c.Messages = append(c.Messages, store.Message{SessionID: ls.id, ID: m.ID, Data: mustJSON(m)})
		}
	case ls.state == nil && c.Create != nil:
		ls.state = &State{Messages: []llm.Message{}}
	case ls.state == nil:
		st, err := e.Conversation(ctx, *ls.row)
		if err != nil {
			return nil, err
		}
		ls.state = st
	}
	st := ls.state
	st.Messages = append(st.Messages, ti.msg)
	st.Updated = unixSeconds(now)
	row := *ls.row
	row.Owner = ti.in.Owner
	row.Status, row.Prompt, row.Updated, row.Expires = store.StatusRunning, ti.in.Prompt, now, time.Time{}
	row.State = meta(st)
	if c.Create != nil {
		c.Create = &row
		c.Events = e.events(ls.id, SessionCreated{SessionID: ls.id, Time: now})
	} else {
		c.Update = &row
	}
	c.Messages = append(c.Messages, store.Message{SessionID: ls.id, ID: ti.msg.ID, Data: mustJSON(ti.msg)})
	c.Inputs = []store.Input{{ID: ti.msg.ID, SessionID: ls.id, Data: mustJSON(ti.msg), State: store.InputRunning, Created: now}}
	c.Events = append(c.Events, e.events(ls.id, TurnStarted{SessionID: ls.id, Message: ti.msg, Time: now})...)
	if err := ls.rec.commit(c); err != nil {
		st.Messages = st.Messages[:len(st.Messages)-1]
		if c.Create != nil {
			ls.row, ls.state = nil, nil
		}
		return nil, err
	}
	ls.row = &row
	return &Turn{e: e, ls: ls, run: run, SessionID: ls.id, Owner: ti.in.Owner, Attended: ti.in.Attended, Data: ti.in.Data,
		row: row, callMsg: map[string]string{}, start: now}, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("engine: encoding %T: %v", v, err))
	}
	return b
}

// execute runs the agent on the turn's input and records every step.
func (e *Engine) execute(t *Turn, ti *turnInput) Outcome {
	ls := t.ls
	st := ls.state
	ctx := t.run.ctx
	if e.cfg.TurnContext != nil {
		ctx = e.cfg.TurnContext(ctx, t)
	}
	t.logCtx = ctx
	conv := agent.Conversation{Messages: st.Messages[: len(st.Messages)-1 : len(st.Messages)-1]}
	var res *agent.Result
	a, err := e.cfg.Agent()
	if err != nil {
		res = &agent.Result{Status: agent.StatusFailed, Err: fmt.Errorf("building the agent: %w", err)}
	} else {
		opts := []agent.RunOption{agent.WithClock(func() int64 { return e.now().UnixMilli() })}
		if e.cfg.Approver != nil {
			if ap := e.cfg.Approver(t); ap != nil {
				opts = append(opts, agent.WithApprover(ap))
			}
		}
		if e.cfg.Asker != nil {
			if as := e.cfg.Asker(t); as != nil {
				opts = append(opts, agent.WithAsker(as))
			}
		}
		for ev := range a.Run(ctx, &conv, []llm.Message{ti.msg}, opts...) {
			now := e.now()
			switch ev.Type {
			case agent.EventText:
				ls.rec.addText(ev.Text)
			case agent.EventLLMCall:
				st.Iteration++
				ls.rec.happen(ModelCall{SessionID: ls.id, Model: ev.Model, Iteration: st.Iteration, Time: now})
			case agent.EventLLMResult:
				ls.rec.happen(ModelResult{SessionID: ls.id, Model: ev.Model, Duration: ev.Duration, Usage: ev.Usage, Cost: ev.Cost, Time: now})
			case agent.EventToolCall:
				ls.rec.happen(ToolCall{SessionID: ls.id, Call: *ev.ToolCall, Time: now})
			case agent.EventToolResult:
				ls.rec.happen(ToolResult{SessionID: ls.id, Outcome: *ev.ToolResult, Time: now})
			case agent.EventMessage:
				m := *ev.Message
				st.Messages = conv.Messages
				if m.Role == llm.RoleUser && m.ID == ti.msg.ID {
					continue // recorded by begin
				}
				t.mu.Lock()
				for _, c := range m.ToolCalls() {
					t.callMsg[c.ID] = m.ID
				}
				t.mu.Unlock()
				st.Updated = unixSeconds(now)
				row := t.saveRow(func(r *store.Session) { r.State, r.Updated = meta(st), now })
				prior := conv.Messages[:len(conv.Messages)-1]
				c := store.Change{Update: row, Messages: []store.Message{{SessionID: ls.id, ID: m.ID, Data: mustJSON(m)}},
					Events: e.events(ls.id, MessageAdded{SessionID: ls.id, Message: m, Prior: prior, State: st, Time: now})}
				if len(m.ToolCalls()) == 0 {
					// Nothing acts on it before the turn's end, which
					// is committed after it (and in its transaction,
					// when it is still queued): the turn need not wait.
					ls.rec.post(c)
				} else if err := ls.rec.commit(c); err != nil {
					// Its calls are stored before they run, so that a
					// restart knows they may have had effects.
					e.log.ErrorContext(ctx, "recording a message", "session", ls.id, "err", err)
				}
			case agent.EventResult:
				res = ev.Result
			}
		}
	}
	if res == nil {
		res = &agent.Result{Status: agent.StatusFailed, Err: errors.New("the run ended without a result")}
	}
	st.Messages = conv.Messages
	out := Outcome{Result: res.Status, Text: res.Text, Err: res.Err, Duration: e.now().Sub(t.start),
		Usage: res.Usage, Cost: res.Cost, MessageID: ti.msg.ID}
	switch res.Status {
	case agent.StatusCompleted, agent.StatusMaxIterations, agent.StatusRejected:
		out.Status = store.StatusDone
		if res.Status == agent.StatusRejected && out.Text == "" {
			out.Text = "The request was stopped: a tool call was rejected."
		}
	case agent.StatusAborted:
		out.Status = store.StatusInterrupted
	default:
		out.Status = store.StatusFailed
	}
	return out
}

// end records the turn's end once its slot is free and reports whether the
// worker stops (the queue is empty or the engine stopping).
func (e *Engine) end(ls *live, t *Turn, ti *turnInput, out Outcome, h *Handle) bool {
	now := e.now()
	st := ls.state
	st.Turn++
	st.Updated = unixSeconds(now)
	var c store.Change
	if out.Status == store.StatusFailed && out.Err != nil {
		// The failed model call is part of the history people see, with
		// the provider's words; the model never reads it.
		m := llm.Message{ID: agent.NewMessageID(), Role: llm.RoleAssistant, Parts: []llm.Part{}, Created: now.UnixMilli(), Completed: now.UnixMilli()}
		if out.Text != "" {
			m.Parts = append(m.Parts, llm.TextPart(out.Text))
		}
		c.Messages = []store.Message{{SessionID: ls.id, ID: m.ID, Data: mustJSON(m), Error: out.Err.Error()}}
		c.Events = e.events(ls.id, MessageAdded{SessionID: ls.id, Message: m, Prior: st.Messages, Error: out.Err.Error(), State: st, Time: now})
	}
	var title string
	row := t.saveRow(func(r *store.Session) {
		r.Status, r.Result, r.Updated, r.Duration, r.State = out.Status, out.Text, now, out.Duration, meta(st)
		r.Error = ""
		if out.Status == store.StatusFailed && out.Err != nil {
			r.Error = out.Err.Error()
		}
		if ttl := e.resultTTL(); ttl > 0 {
			r.Expires = now.Add(ttl)
		}
		if r.Title == "" && e.cfg.Title != nil {
			title = e.cfg.Title(ti.msg.Text())
			r.Title = title
		}
	})
	c.Update = row
	c.Inputs = []store.Input{{ID: ti.msg.ID, SessionID: ls.id, Data: mustJSON(ti.msg), State: store.InputDone, Created: now}}
	if title != "" {
		c.Events = append(c.Events, e.events(ls.id, Titled{SessionID: ls.id, Title: title, Time: now})...)
	}
	snapshot := &State{Messages: st.Messages[:len(st.Messages):len(st.Messages)], Turn: st.Turn, Iteration: st.Iteration, Updated: st.Updated}
	// The end and its announcement (TurnEnded) are one commit, made while
	// the session is still busy and held (ls.mu: no input can be taken
	// in between), so whoever sees the session idle finds its outcome
	// stored. The announcement reaches subscribers only once the session
	// is free: a client that answers it at once (the seed's app.js answers
	// OUTPUT with its next INPUT) finds the session idle.
	ls.mu.Lock()
	more := len(ls.queue) > 0 && !e.closing.Load()
	c.Events = append(c.Events, e.events(ls.id, TurnEnded{SessionID: ls.id, Outcome: out, Busy: more, AgentBusy: more || e.othersBusy(),
		State: snapshot, Time: now})...)
	open, err := ls.rec.commitGated(c)
	if err != nil {
		e.log.ErrorContext(t.logContext(), "recording the end of a turn", "session", ls.id, "err", err)
	}
	ls.run = nil
	ls.row = row
	var done chan struct{}
	if !more {
		done = e.stopWorkerLocked(ls)
	}
	ls.mu.Unlock()
	open()
	t.run.cancel(nil)
	if out.Status == store.StatusFailed {
		e.log.WarnContext(t.logContext(), "turn failed", "session", ls.id, "err", out.Err)
	}
	if h != nil {
		h.out, h.state = out, snapshot
		close(h.done)
	}
	if !more {
		e.finishWorker(ls, done)
	}
	return !more
}

func (e *Engine) resultTTL() time.Duration {
	if e.cfg.ResultTTL == nil {
		return 0
	}
	return e.cfg.ResultTTL()
}
