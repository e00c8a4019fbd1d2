// Package engine is the session engine every front end of an agent stands
// on: host's HTTP, WebSocket and SSE API, and the coding runtime's control
// API. A session is a durable conversation with an append-only event log;
// the engine runs its turns on a bounded pool of workers, queues inputs
// that arrive while a turn runs (when the front end wants that) or refuses
// them, records every step before any client sees it, keeps what a turn
// asks a person (approvals, questions) as requests with ids that can be
// listed and answered, remembers approvals, and after a crash finds what
// was cut short: requests expire, interrupted turns are closed with their
// dangling tool calls answered, queued inputs run.
//
// What the events are called is the front end's business (a Journal); who
// may approve what is its policy (Config.Approver). The engine knows no
// wire format.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
)

// Errors of the engine, checked with errors.Is; front ends map them to
// statuses.
var (
	// ErrBusy: the session has a turn running or queued, and the caller
	// asked not to queue (409).
	ErrBusy = errors.New("session is busy with another request")
	// ErrOverloaded: every worker is busy and the wait queue is full (503).
	ErrOverloaded = errors.New("all workers are busy and the queue is full; retry later")
	// ErrShuttingDown: the engine is stopping (503).
	ErrShuttingDown = errors.New("shutting down")
	// ErrNotFound: no such session (404).
	ErrNotFound = store.ErrNotFound
	// ErrNotWaiting: an answer came while the session waits for none.
	ErrNotWaiting = errors.New("the session is not waiting for an answer")
	// ErrUnknownRequest: no request has that id (404).
	ErrUnknownRequest = store.ErrNoRequest
	// ErrNotPending: the request was answered, expired or cancelled (409).
	ErrNotPending = store.ErrNotPending
	// ErrAborted is the cause of a turn cancelled by Abort.
	ErrAborted = errors.New("aborted")
)

// Config configures an Engine.
type Config struct {
	Store   store.Store
	Journal Journal
	// Agent returns the agent for one turn (a fresh one per turn, or one
	// shared agent: agent.Agent is safe for concurrent runs).
	Agent func() (*agent.Agent, error)
	// Workers bounds the turns running at once (default 8); Queue bounds
	// the Start callers waiting for a worker (default 64 × Workers, at
	// least 1024), past which Start is ErrOverloaded. Queued inputs
	// (Enqueue) wait for a worker without a bound: they are durable.
	Workers, Queue int
	// TextWindow gathers text deltas into one TextDelta per window (0:
	// one per chunk the model sends).
	TextWindow time.Duration
	// KeepEvents bounds the event log to about that many events (0: the
	// log is pruned only with expired sessions).
	KeepEvents int
	// Title names a session after its first turn from its first message's
	// text; nil leaves sessions unnamed.
	Title func(text string) string
	// ResultTTL is how long a finished session is kept (nil or 0: for
	// ever); it is read when each turn ends.
	ResultTTL func() time.Duration
	// Approver and Asker give each turn its policy for tool calls and its
	// way to ask questions; nil runs every tool and answers questions with
	// agent.ErrNoPerson.
	Approver func(t *Turn) agent.Approver
	Asker    func(t *Turn) agent.Asker
	// TurnContext decorates a turn's context for its tools (the coding
	// runtime puts the session's sandbox in it, the host the caller's
	// uploads).
	TurnContext func(ctx context.Context, t *Turn) context.Context
	// ProcessName is what the notes of a recovery call this process
	// ("runtime", "host").
	ProcessName string
	// ReleaseIdle, if set, returns the process's free memory to the
	// system (runtime/debug.FreeOSMemory) once no session has been busy
	// for that long. For a process that serves one agent (the coding
	// runtime): the Go heap keeps the pages of a turn's garbage until its
	// scavenger gets to them, most of an idle runtime's private memory.
	ReleaseIdle time.Duration
	// RequestNoun names a kind of request in those notes (default: the
	// kind and "request").
	RequestNoun func(kind string) string
	Logger      *slog.Logger
	Now         func() time.Time
}

// Engine runs sessions. Build it with New, call Recover once before
// serving, and Shutdown at the end.
type Engine struct {
	cfg   Config
	st    store.Store
	log   *slog.Logger
	now   func() time.Time
	slots chan struct{}

	waiting atomic.Int64 // Start callers waiting for a slot
	closing atomic.Bool
	closed  chan struct{} // closed when Shutdown begins
	base    context.Context
	stopAll context.CancelCauseFunc
	workers sync.WaitGroup

	mu     sync.Mutex
	live   map[string]*live
	shut   bool        // no turn starts once set (under mu)
	busyN  int         // live sessions with a worker (under mu)
	idleT  *time.Timer // ReleaseIdle's (under mu)
	writes int         // commits with events, for pruning (under mu)

	index sessionIndex // what Sessions lists

	wmu     sync.Mutex
	changed chan struct{}                   // closed at the next commit with events
	waiters map[string]chan json.RawMessage // request id → the turn waiting for it
}

// New returns an engine; it starts nothing.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Journal == nil || cfg.Agent == nil {
		return nil, errors.New("engine: Store, Journal and Agent are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Queue <= 0 {
		cfg.Queue = max(1024, 64*cfg.Workers)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProcessName == "" {
		cfg.ProcessName = "host"
	}
	if cfg.RequestNoun == nil {
		cfg.RequestNoun = func(kind string) string { return kind + " request" }
	}
	base, cancel := context.WithCancelCause(context.Background())
	return &Engine{cfg: cfg, st: cfg.Store, log: cfg.Logger, now: cfg.Now, slots: make(chan struct{}, cfg.Workers),
		closed: make(chan struct{}), base: base, stopAll: cancel, live: map[string]*live{},
		changed: make(chan struct{}), waiters: map[string]chan json.RawMessage{}}, nil
}

// live is the in-memory side of a session that has a turn, queued input,
// a waiting request or subscribers. Its conversation is loaded when a turn
// needs it and goes when the live session does: idle sessions cost nothing.
type live struct {
	id   string
	refs int // under Engine.mu
	rec  *recorder

	smu  sync.Mutex // guards subs, apart from mu so commits may run under mu
	subs map[*Subscriber]struct{}

	mu         sync.Mutex
	owner      string
	worker     bool          // a worker runs the session's turns
	workerDone chan struct{} // closed when that worker exits
	run        *activeRun
	queue      []*turnInput
	waiting    *store.Request // what the turn waits for a person to answer
	row        *store.Session // the stored row, once loaded
	state      *State         // the conversation, once loaded
}

// activeRun is a turn in progress.
type activeRun struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (e *Engine) acquire(id, owner string) *live {
	e.mu.Lock()
	defer e.mu.Unlock()
	ls := e.live[id]
	if ls == nil {
		ls = &live{id: id, owner: owner, subs: map[*Subscriber]struct{}{}}
		ls.rec = newRecorder(e, ls)
		e.live[id] = ls
	}
	ls.refs++
	return ls
}

func (e *Engine) release(ls *live) {
	e.mu.Lock()
	ls.refs--
	last := ls.refs == 0
	if last {
		delete(e.live, ls.id)
	}
	e.mu.Unlock()
	if last {
		ls.rec.close()
		e.notify()
	}
}

// hold returns the live session of id with a reference the caller
// releases, or nil when the session is not live.
func (e *Engine) hold(id string) *live {
	e.mu.Lock()
	defer e.mu.Unlock()
	ls := e.live[id]
	if ls != nil {
		ls.refs++
	}
	return ls
}

func (e *Engine) liveSession(id string) *live {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live[id]
}

// LiveSessions counts the sessions held in memory: with a turn, queued
// input or subscribers. An idle engine holds none.
func (e *Engine) LiveSessions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.live)
}

// Busy reports whether the session has a turn running or input queued.
func (e *Engine) Busy(id string) bool {
	ls := e.liveSession(id)
	if ls == nil {
		return false
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.worker
}

// Running reports whether the session has a turn running (not only
// queued input).
func (e *Engine) Running(id string) bool {
	ls := e.liveSession(id)
	if ls == nil {
		return false
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.run != nil
}

// Waiting is the number of Start callers waiting for a free worker (the
// run queue's depth, for metrics).
func (e *Engine) Waiting() int { return int(e.waiting.Load()) }

// Workers is the most turns that run at once (Config.Workers).
func (e *Engine) Workers() int { return cap(e.slots) }

// ActiveRuns is the number of turns holding a worker now.
func (e *Engine) ActiveRuns() int { return len(e.slots) }

// WaitingTurns counts the Start callers waiting for a worker; Changed
// fires when one starts waiting, so a test can wait for the queue to fill
// instead of sleeping.
func (e *Engine) WaitingTurns() int { return int(e.waiting.Load()) }

// AnyBusy reports whether some session is busy.
func (e *Engine) AnyBusy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.busyN > 0
}

// othersBusy reports whether a session other than the caller's, which
// has a worker, is busy.
func (e *Engine) othersBusy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.busyN > 1
}

func (e *Engine) setWorker(ls *live, on bool) {
	e.mu.Lock()
	if on {
		e.busyN++
	} else {
		e.busyN--
	}
	e.idleLocked()
	e.mu.Unlock()
}

// idleLocked arms ReleaseIdle's timer when no session is busy and stops
// it when one is. e.mu is held.
func (e *Engine) idleLocked() {
	if e.cfg.ReleaseIdle <= 0 || e.shut {
		return
	}
	if e.busyN > 0 {
		if e.idleT != nil {
			e.idleT.Stop()
		}
		return
	}
	if e.idleT == nil {
		e.idleT = time.AfterFunc(e.cfg.ReleaseIdle, e.releaseIdle)
		return
	}
	e.idleT.Reset(e.cfg.ReleaseIdle)
}

func (e *Engine) releaseIdle() {
	e.mu.Lock()
	idle := e.busyN == 0 && !e.shut
	e.mu.Unlock()
	if idle {
		freeOSMemory()
	}
}

// freeOSMemory is debug.FreeOSMemory; tests watch it.
var freeOSMemory = debug.FreeOSMemory

// SessionStatus is a session as a status listing shows it.
type SessionStatus struct {
	ID    string
	Title string
	Busy  bool
	// Error is why its latest turn failed ("" when it did not), at
	// Updated.
	Error   string
	Updated time.Time
}

// Sessions lists every session, oldest first, with whether it is busy.
func (e *Engine) Sessions(ctx context.Context) ([]SessionStatus, error) {
	out, err := e.index.sessions(ctx, e.st)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Busy = e.Busy(out[i].ID)
	}
	return out, nil
}

// Session returns a stored session.
func (e *Engine) Session(ctx context.Context, id string) (store.Session, error) {
	return e.st.GetSession(ctx, id)
}

// History returns a session's messages as stored, failed model calls
// included (their Error set).
func (e *Engine) History(ctx context.Context, id string) ([]store.Message, error) {
	return e.st.Messages(ctx, id)
}

// Conversation returns a session's state as its next turn would see it:
// the messages a model reads, and the counters. A live session between
// turns answers from memory, where its next turn reads it too; otherwise
// the state is loaded from the store. The messages are shared: callers
// must not change them.
func (e *Engine) Conversation(ctx context.Context, ss store.Session) (*State, error) {
	if st := e.liveState(ss.ID); st != nil {
		return st, nil
	}
	st := &State{}
	if len(ss.State) > 0 {
		if err := json.Unmarshal(ss.State, st); err != nil {
			return nil, fmt.Errorf("session %s: stored state: %w", ss.ID, err)
		}
	}
	rows, err := e.st.Messages(ctx, ss.ID)
	if err != nil {
		return nil, err
	}
	st.Messages = make([]llm.Message, 0, len(rows))
	for _, r := range rows {
		if r.Error != "" {
			continue
		}
		var m llm.Message
		if err := json.Unmarshal(r.Data, &m); err != nil {
			return nil, fmt.Errorf("session %s: stored message: %w", ss.ID, err)
		}
		st.Messages = append(st.Messages, m)
	}
	return st, nil
}

// liveState returns a copy of the in-memory state of a live session with
// no worker, or nil. Only a worker changes ls.state, and it does so before
// it clears ls.worker under ls.mu, so a reader under ls.mu that sees no
// worker sees every change; the messages slice is capped at its length, so
// the next turn's appends never write into what the caller holds.
func (e *Engine) liveState(id string) *State {
	ls := e.liveSession(id)
	if ls == nil {
		return nil
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.worker || ls.state == nil {
		return nil
	}
	st := *ls.state
	st.Messages = st.Messages[:len(st.Messages):len(st.Messages)]
	return &st
}

// meta is the part of State kept in the session row; messages are rows.
func meta(st *State) json.RawMessage {
	b, _ := json.Marshal(struct {
		Turn      int     `json:"turn"`
		Iteration int     `json:"iteration"`
		Updated   float64 `json:"updated"`
	}{st.Turn, st.Iteration, st.Updated})
	return b
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1e3
}

// Changed returns a channel closed at the next commit that appends events
// to any session's log, or when a session leaves memory or a turn starts
// waiting for a worker: front ends that stream the whole log wait on it,
// then read the store.
func (e *Engine) Changed() <-chan struct{} {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	return e.changed
}

func (e *Engine) notify() {
	e.wmu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.wmu.Unlock()
}

// Shutdown refuses new turns, lets running ones finish until ctx ends,
// then cancels them (their requests expire) and waits until they are
// recorded. Queued inputs stay queued for the next start.
func (e *Engine) Shutdown(ctx context.Context) {
	if e.closing.Swap(true) {
		e.workers.Wait()
		return
	}
	close(e.closed)
	e.mu.Lock()
	e.shut = true
	if e.idleT != nil {
		e.idleT.Stop()
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.workers.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	e.stopAll(ErrShuttingDown)
	<-done
}

// Interrupt cancels the session's running turn if owner owns the
// session.
func (e *Engine) Interrupt(id, owner string, cause error) bool {
	ls := e.liveSession(id)
	if ls == nil {
		return false
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.run == nil || ls.owner != owner {
		return false
	}
	ls.run.cancel(cause)
	return true
}

// Abort discards the session's queued inputs, cancels its running turn
// and waits until the session is idle (or ctx ends). An unknown session is
// ErrNotFound.
func (e *Engine) Abort(ctx context.Context, id string) error {
	ls := e.hold(id)
	if ls == nil {
		if _, err := e.st.GetSession(ctx, id); err != nil {
			return err
		}
		return nil
	}
	done := e.abort(ls)
	e.release(ls)
	return e.waitDone(ctx, done)
}

// AbortAll aborts every busy session and returns their ids, oldest first.
func (e *Engine) AbortAll(ctx context.Context) ([]string, error) {
	e.mu.Lock()
	all := make([]*live, 0, len(e.live))
	for _, ls := range e.live {
		ls.refs++
		all = append(all, ls)
	}
	e.mu.Unlock()
	ids := []string{}
	var dones []chan struct{}
	for _, ls := range all {
		ls.mu.Lock()
		busy := ls.worker
		ls.mu.Unlock()
		if busy {
			ids = append(ids, ls.id)
			if d := e.abort(ls); d != nil {
				dones = append(dones, d)
			}
		}
		e.release(ls)
	}
	for _, d := range dones {
		if err := e.waitDone(ctx, d); err != nil {
			return ids, err
		}
	}
	return ids, nil
}

// abort discards ls's queue and cancels its turn; it returns the channel
// closed when its worker is gone (nil when none runs).
func (e *Engine) abort(ls *live) chan struct{} {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(ls.queue) > 0 {
		if err := ls.rec.commit(store.Change{DiscardQueued: ls.id}); err != nil {
			e.log.Error("discarding queued input", "session", ls.id, "err", err)
		}
		ls.queue = nil
	}
	if ls.run != nil {
		ls.run.cancel(ErrAborted)
	}
	if !ls.worker {
		return nil
	}
	return ls.workerDone
}

func (e *Engine) waitDone(ctx context.Context, done chan struct{}) error {
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
