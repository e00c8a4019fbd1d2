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
	c store.Change
	// done is told when c is committed; nil for a change nobody waits
	// for. more holds the waiters of changes merged into c (next).
	done chan error
	more []chan error
	// gated is told when c is committed, before its events go out; they
	// go out once gate is closed, and announced is closed after
	// (commitGated). A gated change is the last of a merge.
	gated     chan error
	gate      chan struct{}
	announced chan struct{}
	// flush asks the drainer to send the text held back for it.
	flush bool
	// text: c carries a text delta, which goes out as soon as it can
	// (next).
	text bool
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

// commitGated records c and returns once it is committed, before its
// events reach subscribers: open hands them out and returns once they
// are. The caller makes the state the events announce true in between (a
// turn's end frees the session), so whoever acts on them finds it so.
// open must be called, or the session's recorder stops.
func (r *recorder) commitGated(c store.Change) (open func(), err error) {
	it := recItem{c: c, gated: make(chan error, 1), gate: make(chan struct{}), announced: make(chan struct{})}
	r.mu.Lock()
	r.flushLocked()
	r.push(it)
	r.mu.Unlock()
	err = <-it.gated
	return sync.OnceFunc(func() {
		close(it.gate)
		<-it.announced
	}), err
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
		r.push(recItem{c: store.Change{Events: evs}, text: true})
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

// next takes the next change to commit off the queue: the run of changes
// at its head that can share one transaction (see merge), merged into
// one, with all their waiters. ok is false when the queue is empty, and
// the drainer then stops.
//
// Merging is what keeps a turn's commits few: a change nobody waits for
// (events, a message with no tool call) goes into the transaction of the
// change after it, so an unattended turn commits its model call, answer
// and end together instead of one after another. Text is not merged with
// a change that writes more than events: a model's text goes out after a
// commit of events alone, not after the turn's answer and end are written
// with it (merging them doubled the unpaced chunk p99 of
// host/ws-stream).
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
	copied := false
	for ; n < len(r.items) && it.gated == nil && len(it.c.Events) < recBatchMax; n++ {
		more := r.items[n]
		if !mergeable(it.c) || !mergeable(more.c) ||
			(it.text && !eventsOnly(more.c)) || (more.text && !eventsOnly(it.c)) {
			break
		}
		if !copied {
			// The head's slices may be shared with its producer.
			it.c.Messages = append([]store.Message(nil), it.c.Messages...)
			it.c.Inputs = append([]store.Input(nil), it.c.Inputs...)
			it.c.Events = append(make([]store.Event, 0, len(it.c.Events)+8), it.c.Events...)
			copied = true
		}
		it.c = merge(it.c, more.c)
		if more.done != nil {
			it.more = append(it.more, more.done)
		}
		it.more = append(it.more, more.more...)
		it.gated, it.gate, it.announced = more.gated, more.gate, more.announced
		it.text = it.text || more.text
	}
	clear(r.items[:n])
	r.items = r.items[n:]
	r.qcond.Broadcast()
	return it, true
}

// mergeable reports whether c can share a transaction with the changes
// next to it by merge: it only updates the session row and appends
// messages, inputs and events. Creating, replacing, discarding and
// requests keep a transaction of their own, so their failure (a taken id,
// say) fails nothing else.
func mergeable(c store.Change) bool {
	return c.Create == nil && !c.Replace && c.DiscardQueued == "" && len(c.Requests) == 0 && len(c.Resolve) == 0 && len(c.Grants) == 0
}

func eventsOnly(c store.Change) bool {
	return c.Create == nil && c.Update == nil && !c.Replace && len(c.Messages) == 0 && len(c.Inputs) == 0 &&
		c.DiscardQueued == "" && len(c.Requests) == 0 && len(c.Resolve) == 0 && len(c.Grants) == 0
}

// merge returns a followed by b as one change, with the effect of
// applying a then b: the session row b writes replaces a's (UpdateSession
// replaces the whole row), inputs are upserted in order, and messages and
// events are appended in order. a's slices are appended to.
func merge(a, b store.Change) store.Change {
	if b.Update != nil {
		a.Update = b.Update
	}
	a.Messages = append(a.Messages, b.Messages...)
	a.Inputs = append(a.Inputs, b.Inputs...)
	a.Events = append(a.Events, b.Events...)
	return a
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
		stored, err := r.e.store(it.c)
		if it.gated != nil {
			it.gated <- err
			<-it.gate
		}
		if err == nil {
			r.e.announce(r.ls, stored)
		}
		if it.announced != nil {
			close(it.announced)
		}
		for _, done := range it.more {
			done <- err
		}
		if it.done != nil {
			it.done <- err
		} else if err != nil && len(it.more) == 0 && it.gated == nil {
			// Events that were not stored are not sent: a client must
			// never hold what a restart would lose.
			r.e.log.Error("recording a session's progress", "session", r.ls.id, "err", err)
		}
		r.flushGathered(false)
	}
}

// apply commits c and hands its events to ls's subscribers (ls may be nil)
// and to those waiting on Changed.
func (e *Engine) apply(ls *live, c store.Change) error {
	stored, err := e.store(c)
	if err != nil {
		return err
	}
	e.announce(ls, stored)
	return nil
}

// store commits c and notes it in the session index: apply's first half.
func (e *Engine) store(c store.Change) ([]store.Event, error) {
	stored, err := e.st.Apply(context.Background(), c)
	if err != nil {
		return nil, err
	}
	e.index.note(c)
	return stored, nil
}

// announce hands committed events to ls's subscribers (ls may be nil) and
// to those waiting on Changed: apply's second half.
func (e *Engine) announce(ls *live, stored []store.Event) {
	if len(stored) == 0 {
		return
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
