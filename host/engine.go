package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthost/agenthost/internal/store"
	"github.com/google/uuid"
)

// The engine runs sessions independently of transports: HTTP, SSE,
// WebSocket and (later) the relay all start runs, subscribe to a session's
// events and answer approvals through it.

// Engine errors, mapped to statuses by the transports.
var (
	// ErrBusy: the session already has a run (409).
	ErrBusy = errors.New("session is busy with another request")
	// ErrOverloaded: every worker is busy and the wait queue is full (503).
	ErrOverloaded = errors.New("all workers are busy and the queue is full; retry later")
	// ErrShuttingDown: the host is stopping (503).
	ErrShuttingDown = errors.New("host is shutting down")
	// errNotWaiting: an answer arrived while nothing was asked.
	errNotWaiting = errors.New("the session is not waiting for an answer")
)

// event is one server frame of a session, as persisted: Data is a JSON
// object without its "id", which is added when it is sent.
type event struct {
	ID   int64
	Type string
	Data []byte
}

// frame returns the event as sent: Data with "id" first.
func (e event) frame() []byte {
	id := strconv.FormatInt(e.ID, 10)
	b := make([]byte, 0, len(e.Data)+len(id)+10)
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, '"')
	if len(e.Data) > 2 {
		b = append(b, ',')
	}
	return append(b, e.Data[1:]...)
}

// subscriber receives a session's events. When it falls more than its
// buffer behind, it is dropped (overflow closes) and re-subscribes from
// the last event it handled, reading the missed ones from the store.
type subscriber struct {
	// ls is the live session the subscriber is attached to.
	ls       *liveSession
	ch       chan event
	overflow chan struct{}
	once     sync.Once
}

// subscriberBuffer is how many events a subscriber may lag behind before it
// is dropped and catches up from the store. It is most of an idle
// WebSocket session's memory, so it stays small: catching up is cheap.
const subscriberBuffer = 128

func newSubscriber() *subscriber {
	return &subscriber{ch: make(chan event, subscriberBuffer), overflow: make(chan struct{})}
}

func (s *subscriber) drop() { s.once.Do(func() { close(s.overflow) }) }

// liveSession is the in-memory side of a session that has a run or
// subscribers.
type liveSession struct {
	id    string
	mu    sync.Mutex
	subs  map[*subscriber]struct{}
	run   *activeRun
	refs  int
	owner string
	// approved holds tools approved with scope "session".
	approved map[string]bool
}

type engine struct {
	srv   *Server
	st    store.Store
	log   *slog.Logger
	now   func() time.Time
	slots chan struct{}
	queue int

	waiting atomic.Int64
	closing atomic.Bool
	base    context.Context
	stopAll context.CancelCauseFunc
	runs    sync.WaitGroup

	mu     sync.Mutex
	live   map[string]*liveSession
	closed bool // no run starts once set (under mu)
}

func newEngine(srv *Server, st store.Store, workers, queue int) *engine {
	base, cancel := context.WithCancelCause(context.Background())
	return &engine{
		srv: srv, st: st, log: srv.log, now: srv.now,
		slots: make(chan struct{}, workers), queue: queue,
		base: base, stopAll: cancel,
		live: map[string]*liveSession{},
	}
}

// acquire returns the live session id, creating it; release undoes it.
func (e *engine) acquire(id, owner string) *liveSession {
	e.mu.Lock()
	defer e.mu.Unlock()
	ls := e.live[id]
	if ls == nil {
		ls = &liveSession{id: id, owner: owner, subs: map[*subscriber]struct{}{}, approved: map[string]bool{}}
		e.live[id] = ls
	}
	ls.refs++
	return ls
}

func (e *engine) release(ls *liveSession) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ls.refs--
	if ls.refs == 0 {
		delete(e.live, ls.id)
	}
}

// liveOwnedBy reports whether id has no live session or one of owner's.
func (e *engine) liveOwnedBy(id, owner string) bool {
	ls := e.liveSession(id)
	if ls == nil {
		return true
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.owner == owner
}

func (e *engine) liveSession(id string) *liveSession {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live[id]
}

// validID accepts client-proposed ids for new sessions: unguessable ids
// from the server or a client's own UUIDs.
var validID = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)

// sessionFor finds the session a request continues, applying the
// ownership and merge rules: a session of another caller, an expired one
// or an unknown id yield a new session (a client-proposed unknown id is
// kept when it is well formed). The returned stored session is nil for a
// new session.
func (e *engine) sessionFor(ctx context.Context, caller Caller, id string, client *Session) (sess *Session, stored *store.Session, serverNewer bool, err error) {
	if id == "" && client != nil {
		id = client.SessionID
	}
	if id != "" {
		ss, err := e.st.GetSession(ctx, id)
		switch {
		case err == nil && ss.Owner == caller.Address && !e.expired(ss):
			var server Session
			if len(ss.State) > 0 {
				if err := json.Unmarshal(ss.State, &server); err != nil {
					return nil, nil, false, fmt.Errorf("session %s: stored state: %w", id, err)
				}
			}
			server.SessionID = id
			use, newer := merge(client, &server)
			cp := *use
			cp.SessionID = id
			return &cp, &ss, newer, nil
		case err == nil, errors.Is(err, store.ErrExpired):
			// Not yours, or expired (even after the sweeper removed it): a
			// new session under a fresh id, never the other's or the old.
			id = ""
		case errors.Is(err, store.ErrNotFound):
			// Unknown ids are kept when well formed and not in use by
			// another caller (a new session this caller connected to).
			if !validID.MatchString(id) || !e.liveOwnedBy(id, caller.Address) {
				id = ""
			}
		default:
			return nil, nil, false, err
		}
	}
	if id == "" {
		id = uuid.NewString()
	}
	s := &Session{SessionID: id}
	if client != nil {
		s.Messages, s.Turn, s.Iteration, s.Updated = client.Messages, client.Turn, client.Iteration, client.Updated
	}
	return s, nil, false, nil
}

func (e *engine) expired(ss store.Session) bool {
	return ss.Status.Finished() && !ss.Expires.IsZero() && !e.now().Before(ss.Expires)
}

// getSession returns a session the caller may see: its own, or an
// anonymous one (whose id is the capability). Others are ErrNotFound, so
// ids leak nothing.
func (e *engine) getSession(ctx context.Context, caller Caller, id string) (store.Session, error) {
	ss, err := e.st.GetSession(ctx, id)
	if err != nil {
		return ss, err
	}
	if (ss.Owner != "" && ss.Owner != caller.Address && !caller.SeesAll) || e.expired(ss) {
		return store.Session{}, fmt.Errorf("session %s: %w", id, store.ErrNotFound)
	}
	return ss, nil
}

// publisher persists a run's events in batches and hands each batch to
// the session's subscribers once it is committed: nothing reaches a client
// before it is durable, and the run never waits on the disk for each
// chunk (it only blocks when far ahead of the store).
type publisher struct {
	e    *engine
	ls   *liveSession
	q    chan store.Event
	done chan struct{}
}

func (e *engine) newPublisher(ls *liveSession) *publisher {
	p := &publisher{e: e, ls: ls, q: make(chan store.Event, 4096), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *publisher) send(typ string, data []byte) {
	p.q <- store.Event{SessionID: p.ls.id, Type: typ, Data: data, Created: p.e.now()}
}

// close delivers what is queued and stops the publisher.
func (p *publisher) close() {
	close(p.q)
	<-p.done
}

func (p *publisher) loop() {
	defer close(p.done)
	for ev := range p.q {
		batch := []store.Event{ev}
	drain:
		for len(batch) < 512 {
			select {
			case ev, ok := <-p.q:
				if !ok {
					break drain
				}
				batch = append(batch, ev)
			default:
				break drain
			}
		}
		stored, err := p.e.st.AppendEvents(context.Background(), batch)
		if err != nil {
			// Unpersisted events are not sent: a client must never hold
			// what a restart would lose.
			p.e.log.Error("persisting events", "session", p.ls.id, "count", len(batch), "err", err)
			continue
		}
		p.e.fanOut(p.ls, stored)
	}
}

// fanOut hands committed events to the session's subscribers; one that is
// too far behind is dropped and catches up from the store.
func (e *engine) fanOut(ls *liveSession, stored []store.Event) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, se := range stored {
		ev := event{ID: se.ID, Type: se.Type, Data: se.Data}
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

// subscribe attaches sub to the session id and returns the stored events
// after `after` to replay. Live events may repeat replayed ones; consumers
// skip ids they have sent.
func (e *engine) subscribe(ctx context.Context, id, owner string, sub *subscriber, after int64) (*liveSession, []event, error) {
	ls := e.acquire(id, owner)
	ls.mu.Lock()
	ls.subs[sub] = struct{}{}
	ls.mu.Unlock()
	sub.ls = ls
	stored, err := e.st.Events(ctx, id, after, 0)
	if err != nil {
		e.unsubscribe(ls, sub)
		return nil, nil, err
	}
	out := make([]event, len(stored))
	for i, ev := range stored {
		out[i] = event{ID: ev.ID, Type: ev.Type, Data: ev.Data}
	}
	return ls, out, nil
}

func (e *engine) unsubscribe(ls *liveSession, sub *subscriber) {
	if ls == nil || sub.ls != ls {
		return
	}
	ls.mu.Lock()
	delete(ls.subs, sub)
	ls.mu.Unlock()
	sub.ls = nil
	e.release(ls)
}

// interrupt cancels the session's run, if the caller owns it.
func (e *engine) interrupt(id string, caller Caller) bool {
	ls := e.liveSession(id)
	if ls == nil {
		return false
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.run == nil || ls.owner != caller.Address {
		return false
	}
	ls.run.cancel(errInterrupted)
	return true
}

var errInterrupted = errors.New("interrupted by the client")

// answer delivers an APPROVAL_RESPONSE or ASK_USER_RESPONSE to the run
// waiting for it.
func (e *engine) answer(id string, caller Caller, a answer) error {
	ls := e.liveSession(id)
	if ls == nil {
		return errNotWaiting
	}
	ls.mu.Lock()
	r, owner := ls.run, ls.owner
	ls.mu.Unlock()
	if r == nil || owner != caller.Address {
		return errNotWaiting
	}
	return r.deliver(a)
}

// sweep deletes expired sessions until ctx ends.
func (e *engine) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := e.st.DeleteExpired(ctx, e.now()); err != nil && ctx.Err() == nil {
			e.log.Warn("deleting expired sessions", "err", err)
		} else if n > 0 {
			e.log.Info("deleted expired sessions", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// shutdown stops new runs, lets running ones finish within ctx, then
// interrupts the rest and waits for them to record it.
func (e *engine) shutdown(ctx context.Context) {
	e.closing.Store(true)
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.runs.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	e.stopAll(ErrShuttingDown)
	<-done
}
