package engine

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/agenthost/agenthost/internal/store"
)

// sessionIndex keeps what Sessions lists (id, title, error, time) for
// every session in memory, so that listing them does not read every
// session row from the store: a runtime's status, polled while a turn
// runs, did that on each poll (16% of a runtime's CPU in the platform's
// messages benchmark, growing with every session it kept). It is loaded
// from the store on first use and kept up to date by apply, which sees
// every change to a session row this engine makes; writes that go around
// apply (InterruptRunning in Recover, DeleteExpired) drop it, and the next
// Sessions loads it again.
type sessionIndex struct {
	mu     sync.Mutex
	loaded bool
	list   []indexed // oldest first: created, then the order seen
	byID   map[string]int
}

type indexed struct {
	SessionStatus
	created time.Time
}

// sessions returns the listed sessions, loading them if needed.
func (x *sessionIndex) sessions(ctx context.Context, st store.Store) ([]SessionStatus, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.loaded {
		// Loaded under mu: a change committed after this read waits in
		// note for mu and is applied on top, one committed before it is in
		// the rows (and noting it again changes nothing).
		rows, err := st.ListSessions(ctx, store.ListOptions{All: true, OldestFirst: true, Limit: -1})
		if err != nil {
			return nil, err
		}
		x.list = make([]indexed, len(rows))
		x.byID = make(map[string]int, len(rows))
		for i, r := range rows {
			x.list[i] = indexed{SessionStatus{ID: r.ID, Title: r.Title, Error: r.Error, Updated: r.Updated}, r.Created}
			x.byID[r.ID] = i
		}
		x.loaded = true
	}
	out := make([]SessionStatus, len(x.list))
	for i := range x.list {
		out[i] = x.list[i].SessionStatus
	}
	return out, nil
}

// note records a committed change's session row.
func (x *sessionIndex) note(c store.Change) {
	row := c.Create
	if c.Update != nil {
		row = c.Update
	}
	if row == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.loaded {
		return
	}
	s := SessionStatus{ID: row.ID, Title: row.Title, Error: row.Error, Updated: asStored(row.Updated)}
	if i, ok := x.byID[row.ID]; ok {
		x.list[i].SessionStatus = s
		return
	}
	created := asStored(row.Created)
	// After every session created at or before it (usually the end).
	i := sort.Search(len(x.list), func(i int) bool { return x.list[i].created.After(created) })
	x.list = append(x.list, indexed{})
	copy(x.list[i+1:], x.list[i:])
	x.list[i] = indexed{s, created}
	for j := i; j < len(x.list); j++ {
		x.byID[x.list[j].ID] = j
	}
}

// asStored is t as a store gives it back: to the millisecond, in UTC.
func asStored(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

// drop forgets the index; the next Sessions loads it again.
func (x *sessionIndex) drop() {
	x.mu.Lock()
	x.loaded, x.list, x.byID = false, nil, nil
	x.mu.Unlock()
}

// DeleteExpired deletes the store's expired sessions (store.Store's
// DeleteExpired) and keeps the engine's list of sessions in step.
func (e *Engine) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	n, err := e.st.DeleteExpired(ctx, now)
	e.index.drop()
	return n, err
}
