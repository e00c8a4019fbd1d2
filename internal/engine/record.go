package engine

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/internal/store"
)

// recorder commits a live session's changes in the order they are made,
// each change with the events that announce it, and hands the events to
// the session's subscribers once committed: nothing reaches a client
// before it is durable. Changes a turn need not wait for (text, tool
// events) are batched; a turn blocks only on the changes it must know are
// stored (messages, requests) and when it runs far ahead of the disk.
//
// The queue is a slice, and the goroutine that drains it runs only while
// it holds something: a live session that records nothing (an idle
// subscriber) costs neither a goroutine nor a buffer. (A channel of
// recQueueMax changes was allocated and zeroed for every session that
// went live, ~10% of POST /input's CPU.)
type recorder struct {
	e  *Engine
	ls *live

	// mu orders enqueueing: gathered text always goes in before whatever
	// is recorded after it.
	mu    sync.Mutex
	text  strings.Builder
	timer *time.Timer

	qmu      sync.Mutex
	qcond    sync.Cond // signalled when the queue shrinks or the drainer stops
	items    []recItem
	draining bool
	gathered bool // text was held back for the drainer to send
}

// recQueueMax bounds the changes queued before the turn that makes them
// waits for the disk.
const recQueueMax = 4096

// recBatchMax bounds the events gathered into one transaction.
const recBatchMax = 512

type recItem struct {
	c    store.Change
	done chan error // nil for a change nobody waits for
	// flush asks the drainer to send the text held back for it.
	flush bool
}

func newRecorder(e *Engine, ls *live) *recorder {
	r := &recorder{e: e, ls: ls}
	r.qcond.L = &r.qmu
	return r
}

// commit records c and returns once it is committed.
func (r *recorder) commit(c store.Change) error { return <-r.enqueue(c) }

// enqueue records c; the channel tells when it is committed.
func (r *recorder) enqueue(c store.Change) <-chan error {
	done := make(chan error, 1)
	r.mu.Lock()
	r.flushLocked()
	r.push(recItem{c: c, done: done})
	r.mu.Unlock()
	return done
}

// post records c without waiting.
func (r *recorder) post(c store.Change) {
	r.mu.Lock()
	r.flushLocked()
	r.push(recItem{c: c})
	r.mu.Unlock()
}

// push queues it, waiting while the queue is full, and starts the drainer
// if none runs.
func (r *recorder) push(it recItem) {
	r.qmu.Lock()
	for len(r.items) >= recQueueMax {
		r.qcond.Wait()
	}
	r.items = append(r.items, it)
	if !r.draining {
		r.draining = true
		go r.drain()
	}
	r.qmu.Unlock()
}

// happen posts the events of h.
func (r *recorder) happen(h Happening) {
	if evs := r.e.events(r.ls.id, h); len(evs) > 0 {
		r.post(store.Change{Events: evs})
	}
}

// addText gathers a text delta for the engine's TextWindow. Without a
// window, a delta goes out at once when nothing of the session is being
// committed; while something is, deltas gather and go out as one as soon
// as that commit is done. A model faster than the disk so never waits on
// it, and its text reaches clients one commit behind instead of queueing
// one event per chunk (a 2,000-chunk burst took ~0.7 s to reach a client
// that way). Every character is still in the log, so a client that
// reconnects with its last event id misses nothing.
func (r *recorder) addText(text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.text.WriteString(text)
	if r.e.cfg.TextWindow > 0 {
		if r.timer == nil {
			r.timer = time.AfterFunc(r.e.cfg.TextWindow, r.flush)
		}
		return
	}
	r.qmu.Lock()
	busy := r.draining
	if busy {
		r.gathered = true
	}
	r.qmu.Unlock()
	if !busy {
		r.flushLocked()
	}
}

// flushGathered sends the text gathered while a commit ran (no window).
// After a commit it only tries: whoever holds mu either sends the text
// before its own change or, adding text, marks it gathered for the next
// call — and waiting could deadlock with a turn that holds mu while it
// waits for room in a full queue.
func (r *recorder) flushGathered(wait bool) {
	if r.e.cfg.TextWindow > 0 {
		return
	}
	if wait {
		r.mu.Lock()
	} else if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	r.flushLocked()
}

func (r *recorder) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
}

func (r *recorder) flushLocked() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if r.text.Len() == 0 {
		return
	}
	text := r.text.String()
	r.text.Reset()
	if evs := r.e.events(r.ls.id, TextDelta{SessionID: r.ls.id, Text: text, Time: r.e.now()}); len(evs) > 0 {
		r.push(recItem{c: store.Change{Events: evs}})
	}
}

// close commits what is queued and waits for the drainer to stop.
func (r *recorder) close() {
	r.mu.Lock()
	r.flushLocked()
	r.mu.Unlock()
	r.qmu.Lock()
	for r.draining {
		r.qcond.Wait()
	}
	r.qmu.Unlock()
}

// next takes the next change to commit off the queue: one change someone
// waits for, or the run of events-only changes at the head gathered into
// one. ok is false when the queue is empty, and the drainer then stops.
func (r *recorder) next() (it recItem, ok bool) {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	if len(r.items) == 0 && r.gathered {
		// Text held back for this drainer: it is sent first (flush
		// pushes it, then the drainer takes it).
		r.gathered = false
		return recItem{flush: true}, true
	}
	if len(r.items) == 0 {
		r.draining = false
		r.items = nil // a burst's backing array is not kept by an idle session
		r.qcond.Broadcast()
		return recItem{}, false
	}
	it, n := r.items[0], 1
	if it.done == nil && eventsOnly(it.c) {
		// Batch what follows of the same kind into one transaction.
		var evs []store.Event
		for ; n < len(r.items) && len(it.c.Events)+len(evs) < recBatchMax; n++ {
			more := r.items[n]
			if more.done != nil || !eventsOnly(more.c) {
				break
			}
			if evs == nil {
				evs = append(make([]store.Event, 0, len(it.c.Events)+8), it.c.Events...)
			}
			evs = append(evs, more.c.Events...)
		}
		if evs != nil {
			it.c.Events = evs
		}
	}
	clear(r.items[:n])
	r.items = r.items[n:]
	r.qcond.Broadcast()
	return it, true
}

func (r *recorder) drain() {
	for {
		it, ok := r.next()
		if !ok {
			return
		}
		if it.flush {
			// The queue is empty, so nobody holding mu waits for room.
			r.flushGathered(true)
			continue
		}
		err := r.e.apply(r.ls, it.c)
		if it.done != nil {
			it.done <- err
		} else if err != nil {
			// Events that were not stored are not sent: a client must
			// never hold what a restart would lose.
			r.e.log.Error("recording a session's progress", "session", r.ls.id, "err", err)
		}
		r.flushGathered(false)
	}
}

func eventsOnly(c store.Change) bool {
	return c.Create == nil && c.Update == nil && !c.Replace && len(c.Messages) == 0 && len(c.Inputs) == 0 &&
		c.DiscardQueued == "" && len(c.Requests) == 0 && len(c.Resolve) == 0 && len(c.Grants) == 0
}

// apply commits c and hands its events to ls's subscribers (ls may be nil)
// and to those waiting on Changed.
func (e *Engine) apply(ls *live, c store.Change) error {
	stored, err := e.st.Apply(context.Background(), c)
	if err != nil {
		return err
	}
	e.index.note(c)
	if len(stored) == 0 {
		return nil
	}
	if ls != nil {
		ls.fanOut(stored)
	}
	e.notify()
	if keep := e.cfg.KeepEvents; keep > 0 {
		e.mu.Lock()
		e.writes++
		prune := e.writes%2000 == 0
		e.mu.Unlock()
		if prune {
			if err := e.st.PruneEvents(context.Background(), keep); err != nil {
				e.log.Warn("pruning the event log", "err", err)
			}
		}
	}
	return nil
}

// record commits c through the live session of id when there is one (in
// order with its turn's changes), directly otherwise.
func (e *Engine) record(id string, c store.Change) error {
	ls := e.hold(id)
	if ls == nil {
		return e.apply(nil, c)
	}
	defer e.release(ls)
	return ls.rec.commit(c)
}

// events is what the journal makes of h, stamped with the session.
func (e *Engine) events(sessionID string, h Happening) []store.Event {
	evs := e.cfg.Journal.Events(h)
	now := e.now()
	for i := range evs {
		evs[i].SessionID = sessionID
		if evs[i].Created.IsZero() {
			evs[i].Created = now
		}
	}
	return evs
}

// Subscriber receives a session's events. When it falls more than its
// buffer behind it is dropped (Overflow closes); it then subscribes again
// from the last event it handled and reads the missed ones from the store.
type Subscriber struct {
	ls       *live
	ch       chan store.Event
	overflow chan struct{}
	once     sync.Once
}

// subscriberBuffer is how many events a subscriber may lag behind before
// it is dropped. It is most of an idle WebSocket session's memory, so it
// stays small: catching up from the store is cheap.
const subscriberBuffer = 128

// NewSubscriber returns a subscriber attached to nothing yet.
func NewSubscriber() *Subscriber {
	return &Subscriber{ch: make(chan store.Event, subscriberBuffer), overflow: make(chan struct{})}
}

// Events delivers the session's committed events, in order; live events
// may repeat replayed ones, so consumers skip ids they have handled.
func (s *Subscriber) Events() <-chan store.Event { return s.ch }

// Overflow is closed when the subscriber fell too far behind.
func (s *Subscriber) Overflow() <-chan struct{} { return s.overflow }

// Attached reports whether the subscriber follows a session.
func (s *Subscriber) Attached() bool { return s != nil && s.ls != nil }

func (s *Subscriber) drop() { s.once.Do(func() { close(s.overflow) }) }

func (ls *live) fanOut(stored []store.Event) {
	ls.smu.Lock()
	defer ls.smu.Unlock()
	for _, ev := range stored {
		for sub := range ls.subs {
			select {
			case sub.ch <- ev:
			default:
				delete(ls.subs, sub)
				sub.drop()
			}
		}
	}
}

// Subscribe attaches sub to session id (owned by owner if the engine has
// to hold it) and returns the stored events after `after` to replay.
func (e *Engine) Subscribe(ctx context.Context, id, owner string, sub *Subscriber, after int64) ([]store.Event, error) {
	ls := e.acquire(id, owner)
	ls.smu.Lock()
	ls.subs[sub] = struct{}{}
	ls.smu.Unlock()
	sub.ls = ls
	stored, err := e.st.Events(ctx, id, after, 0)
	if err != nil {
		e.Unsubscribe(sub)
		return nil, err
	}
	return stored, nil
}

// Unsubscribe detaches sub from its session, if it follows one.
func (e *Engine) Unsubscribe(sub *Subscriber) {
	if sub == nil || sub.ls == nil {
		return
	}
	ls := sub.ls
	ls.smu.Lock()
	delete(ls.subs, sub)
	ls.smu.Unlock()
	sub.ls = nil
	e.release(ls)
}

// Owner returns the owner of the session's live state ("" when it is not
// live).
func (e *Engine) Owner(id string) string {
	ls := e.liveSession(id)
	if ls == nil {
		return ""
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.owner
}

// OwnedBy reports whether id has no live state or one of owner's.
func (e *Engine) OwnedBy(id, owner string) bool {
	ls := e.liveSession(id)
	if ls == nil {
		return true
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.owner == owner
}
