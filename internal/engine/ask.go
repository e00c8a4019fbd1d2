package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agenthost/agenthost/internal/store"
)

// The states the engine gives requests that end unanswered.
const (
	// StateCancelled: the turn was aborted or interrupted.
	StateCancelled = "cancelled"
	// StateExpired: nobody answered in time, or the engine stopped or
	// restarted.
	StateExpired = "expired"
)

// AskRequest is what a turn asks a person.
type AskRequest struct {
	// ID is the request's id (front ends choose their own prefixes).
	ID   string
	Kind string
	// CallID is the tool call it is about, if any.
	CallID string
	// Data is the request as the front end lists it.
	Data json.RawMessage
	// Timeout ends the wait (0: it lasts as long as the turn).
	Timeout time.Duration
}

// Ask records a pending request of this turn, with the session waiting
// for a person, and waits for Reply. When ctx ends first the request is
// cancelled (expired when the engine is stopping); after Timeout it
// expires.
func (t *Turn) Ask(ctx context.Context, r AskRequest) (json.RawMessage, error) {
	e, ls := t.e, t.ls
	now := e.now()
	req := store.Request{ID: r.ID, Kind: r.Kind, SessionID: ls.id, CallID: r.CallID, Data: r.Data, State: store.RequestPending, Created: now}
	ch := make(chan json.RawMessage, 1)
	e.wmu.Lock()
	e.waiters[req.ID] = ch
	e.wmu.Unlock()
	defer func() {
		e.wmu.Lock()
		delete(e.waiters, req.ID)
		e.wmu.Unlock()
	}()
	ls.mu.Lock()
	ls.waiting = &req
	ls.mu.Unlock()
	defer func() {
		ls.mu.Lock()
		ls.waiting = nil
		ls.mu.Unlock()
	}()
	row := t.saveRow(func(s *store.Session) { s.Status, s.Updated = store.StatusWaitingApproval, now })
	err := ls.rec.commit(store.Change{Update: row, Requests: []store.Request{req},
		Events: e.events(ls.id, RequestPending{Request: req, Time: now})})
	if err != nil {
		return nil, fmt.Errorf("storing the request: %w", err)
	}
	defer func() {
		row := t.saveRow(func(s *store.Session) { s.Status, s.Updated = store.StatusRunning, e.now() })
		ls.rec.post(store.Change{Update: row})
	}()
	var timeout <-chan time.Time
	if r.Timeout > 0 {
		tm := time.NewTimer(r.Timeout)
		defer tm.Stop()
		timeout = tm.C
	}
	var why error
	state := StateCancelled
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		why = context.Cause(ctx)
		if e.closing.Load() {
			state = StateExpired
		}
	case <-timeout:
		why, state = fmt.Errorf("nobody answered within %s", r.Timeout), StateExpired
	}
	req.State = state
	err = ls.rec.commit(store.Change{Resolve: []store.Resolution{{ID: req.ID, Kind: req.Kind, State: state}},
		Events: e.events(ls.id, RequestResolved{Request: req, Time: e.now()})})
	if err != nil && !errorsIsNotPending(err) {
		e.log.Error("ending a request", "id", req.ID, "err", err)
	}
	select { // a reply that won the race still counts
	case v := <-ch:
		return v, nil
	default:
	}
	return nil, why
}

// Answer is a person's reply to a request.
type Answer struct {
	Kind, ID string
	// State is what answering makes of the request (replied, answered).
	State string
	Reply json.RawMessage
	// SessionID, if set, restricts the answer to that session's requests:
	// another session's id is ErrUnknownRequest.
	SessionID string
	// Check validates the reply against the request; its error is
	// returned as it is.
	Check func(store.Request) error
}

// Reply answers a pending request: ErrUnknownRequest for an id never
// issued (of that kind), ErrNotPending for one no longer pending.
func (e *Engine) Reply(ctx context.Context, a Answer) error {
	req, err := e.st.Request(ctx, a.Kind, a.ID)
	if err != nil {
		return err
	}
	if a.SessionID != "" && req.SessionID != a.SessionID {
		return fmt.Errorf("%s %s: %w", a.Kind, a.ID, ErrUnknownRequest)
	}
	if req.State != store.RequestPending {
		return fmt.Errorf("%s %s: %w", a.Kind, a.ID, &store.StateError{State: req.State})
	}
	if a.Check != nil {
		if err := a.Check(req); err != nil {
			return err
		}
	}
	req.State, req.Reply = a.State, a.Reply
	err = e.record(req.SessionID, store.Change{Resolve: []store.Resolution{{ID: a.ID, Kind: a.Kind, State: a.State, Reply: a.Reply}},
		Events: e.events(req.SessionID, RequestResolved{Request: req, Time: e.now()})})
	if err != nil {
		return err
	}
	e.wmu.Lock()
	ch := e.waiters[a.ID]
	e.wmu.Unlock()
	if ch == nil {
		e.log.Warn("a reply found nobody waiting", "id", a.ID)
		return nil
	}
	select {
	case ch <- a.Reply:
	default:
	}
	return nil
}

// ReplyWaiting answers the request of kind that session id's turn waits
// for, if owner owns the session; ErrNotWaiting otherwise.
func (e *Engine) ReplyWaiting(ctx context.Context, id, owner, kind, state string, reply json.RawMessage) error {
	ls := e.hold(id)
	if ls == nil {
		return ErrNotWaiting
	}
	ls.mu.Lock()
	w, own := ls.waiting, ls.owner
	ls.mu.Unlock()
	e.release(ls)
	if w == nil || w.Kind != kind || own != owner {
		return ErrNotWaiting
	}
	err := e.Reply(ctx, Answer{Kind: kind, ID: w.ID, State: state, Reply: reply, SessionID: id})
	if errorsIsNotPending(err) {
		return ErrNotWaiting
	}
	return err
}

// Pending lists the pending requests of a kind ("" for every kind),
// oldest first; only session's when it is set.
func (e *Engine) Pending(ctx context.Context, kind, session string) ([]store.Request, error) {
	all, err := e.st.Requests(ctx, kind, store.RequestPending)
	if err != nil || session == "" {
		return all, err
	}
	var out []store.Request
	for _, r := range all {
		if r.SessionID == session {
			out = append(out, r)
		}
	}
	return out, nil
}

// Grants returns the remembered approvals of the scopes ("" agent-wide, or
// a session id; every one when none is given).
func (e *Engine) Grants(ctx context.Context, scopes ...string) ([]store.Grant, error) {
	return e.st.Grants(ctx, scopes...)
}

// Grant remembers approvals (a session's when their Scope names it).
func (e *Engine) Grant(ctx context.Context, gs ...store.Grant) error {
	if len(gs) == 0 {
		return nil
	}
	return e.record(gs[0].Scope, store.Change{Grants: gs})
}

func errorsIsNotPending(err error) bool { return err != nil && errors.Is(err, ErrNotPending) }
