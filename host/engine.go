package host

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/google/uuid"
)

// The host is the seed-000 front end over the session engine
// (internal/engine): this file holds its rules for sessions — who owns
// one, which id a caller's request continues, how a client's copy of a
// session is merged — and the WebSocket vocabulary of its event log is in
// wsjournal.go. HTTP, SSE, WebSocket and the relay all start runs,
// subscribe to a session's events and answer approvals through it.

// Engine errors, mapped to statuses by the transports.
var (
	// ErrBusy: the session already has a run (409).
	ErrBusy = engine.ErrBusy
	// ErrOverloaded: every worker is busy and the wait queue is full (503).
	ErrOverloaded = engine.ErrOverloaded
	// ErrShuttingDown: the host is stopping (503).
	ErrShuttingDown = fmt.Errorf("host is %w", engine.ErrShuttingDown)
	// errNotWaiting: an answer arrived while nothing was asked.
	errNotWaiting = engine.ErrNotWaiting
)

// event is one server frame of a session, as persisted: Data is a JSON
// object without its "id", which frame adds when it is sent.
type event = store.Event

// frame returns the event as sent: Data with "id" first.
func frame(e event) []byte {
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

// subscriber receives a session's events (engine.Subscriber).
type subscriber = engine.Subscriber

func newSubscriber() *subscriber { return engine.NewSubscriber() }

// hostEngine is the session engine with the host's session rules.
type hostEngine struct {
	srv  *Server
	st   store.Store
	log  *slog.Logger
	now  func() time.Time
	core *engine.Engine

	idKeyOnce sync.Once
	idKey     []byte
}

func newEngine(srv *Server, st store.Store, workers, queue int) (*hostEngine, error) {
	e := &hostEngine{srv: srv, st: st, log: srv.log, now: srv.now}
	core, err := engine.New(engine.Config{
		Store:     st,
		Journal:   srv.obs.runs.Journal(engine.JournalFunc(wsEvents)),
		Agent:     func() (*agent.Agent, error) { return srv.current().newAgent() },
		Workers:   workers,
		Queue:     queue,
		ResultTTL: func() time.Duration { return srv.current().cfg.ResultTTL },
		Approver:  e.approver,
		Asker:     e.asker,
		TurnContext: func(ctx context.Context, t *engine.Turn) context.Context {
			return turnContext(srv.obs.runs.StartTurn(ctx, t, traceParent(t)), t)
		},
		ProcessName: "host",
		Logger:      srv.log,
		Now:         srv.now,
	})
	if err != nil {
		return nil, err
	}
	e.core = core
	return e, nil
}

// subscribe attaches sub to the session id and returns the stored events
// after `after` to replay.
func (e *hostEngine) subscribe(ctx context.Context, id, owner string, sub *subscriber, after int64) ([]event, error) {
	return e.core.Subscribe(ctx, id, owner, sub, after)
}

func (e *hostEngine) unsubscribe(sub *subscriber) { e.core.Unsubscribe(sub) }

// validID accepts client-proposed ids for new sessions: unguessable ids
// from the server or a client's own UUIDs.
var validID = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)

// sessionFor finds the session a request continues, applying the
// ownership and merge rules. The caller's own live session is continued.
// Any other id it names — another caller's, an expired one, or one that
// does not exist — gets the same answer, so the answer tells nothing about
// which ids exist: a new session (or the caller's session started earlier
// under that name) whose id is derived from the caller and the name
// (derivedID). Only an id this host issued to the caller on this
// connection (issued: CONNECTED's id of a session not yet stored) is kept
// as it is. The returned stored session is nil for a new session.
func (e *hostEngine) sessionFor(ctx context.Context, caller Caller, id string, client *Session, issued bool) (sess *Session, stored *store.Session, serverNewer bool, err error) {
	r, err := e.resolve(ctx, caller, id, client, issued)
	return r.sess, r.stored, r.newer, err
}

// resolved is the session a request continues.
type resolved struct {
	sess   *Session
	stored *store.Session
	newer  bool
	// replace: the conversation to run on is the client's copy, not the
	// stored one.
	replace bool
	// named is the id the caller named, when the result is a new session
	// rather than the caller's session of that name.
	named string
}

func (e *hostEngine) resolve(ctx context.Context, caller Caller, id string, client *Session, issued bool) (resolved, error) {
	if id == "" && client != nil {
		id = client.SessionID
	}
	named := id
	if id != "" {
		ss, err := e.st.GetSession(ctx, id)
		switch {
		case err == nil && ss.Owner == caller.Address && !e.expired(ss):
			return e.continueSession(ctx, id, ss, client)
		case err == nil, errors.Is(err, store.ErrExpired), errors.Is(err, store.ErrNotFound):
		default:
			return resolved{}, err
		}
		if issued && errors.Is(err, store.ErrNotFound) && validID.MatchString(id) && e.core.OwnedBy(id, caller.Address) {
			// The id CONNECTED gave this caller for its new session.
		} else {
			id = e.derivedID(caller.Address, id)
			ss, err := e.st.GetSession(ctx, id)
			switch {
			case err == nil && ss.Owner == caller.Address && !e.expired(ss):
				return e.continueSession(ctx, id, ss, client)
			case errors.Is(err, store.ErrNotFound) && e.core.OwnedBy(id, caller.Address):
			case err == nil, errors.Is(err, store.ErrExpired), errors.Is(err, store.ErrNotFound):
				id = ""
			default:
				return resolved{}, err
			}
		}
	}
	if id == "" {
		id = uuid.NewString()
	}
	s := &Session{SessionID: id}
	if client != nil {
		s.Messages, s.Turn, s.Iteration, s.Updated = client.Messages, client.Turn, client.Iteration, client.Updated
	}
	return resolved{sess: s, replace: len(s.Messages) > 0, named: named}, nil
}

// unknownSession is the 404 for a named session that is not the caller's:
// the same answer whether it never existed, expired, or is another
// caller's, so it tells nobody which ids exist.
func unknownSession(id string) error {
	return errorf(http.StatusNotFound, "session %q is not one of your sessions: leave session_id out to start a new session, or send \"create_session\": true to start one under this name", clipString(id, 80))
}

// continueSession merges the client's copy into the caller's stored
// session.
func (e *hostEngine) continueSession(ctx context.Context, id string, ss store.Session, client *Session) (resolved, error) {
	st, err := e.core.Conversation(ctx, ss)
	if err != nil {
		return resolved{}, err
	}
	server := sessionOf(id, st)
	use, newer := merge(client, server)
	cp := *use
	cp.SessionID = id
	return resolved{sess: &cp, stored: &ss, newer: newer, replace: use != server}, nil
}

// sessionOf is the session object of an engine state.
func sessionOf(id string, st *engine.State) *Session {
	return &Session{SessionID: id, Messages: st.Messages, Turn: st.Turn, Iteration: st.Iteration, Updated: st.Updated}
}

// derivedID is the id of the session a caller gets when it names an id
// that is not its own: the same for the same caller and name (so a client
// that names its relay session id again finds the session it started),
// different for every caller, and unguessable without the host's key.
func (e *hostEngine) derivedID(owner, named string) string {
	e.idKeyOnce.Do(func() {
		// An Ed25519 signature is deterministic: only the holder of the
		// host's key can compute this secret.
		sum := sha256.Sum256(e.srv.id.Sign([]byte("agenthost/session-ids/v1")))
		e.idKey = sum[:]
	})
	m := hmac.New(sha256.New, e.idKey)
	m.Write([]byte(owner))
	m.Write([]byte{0})
	m.Write([]byte(named))
	h := hex.EncodeToString(m.Sum(nil))[:32]
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (e *hostEngine) expired(ss store.Session) bool {
	return ss.Status.Finished() && !ss.Expires.IsZero() && !e.now().Before(ss.Expires)
}

// getSession returns a session the caller may see: its own, or an
// anonymous one (whose id is the capability). Others are ErrNotFound, so
// ids leak nothing.
func (e *hostEngine) getSession(ctx context.Context, caller Caller, id string) (store.Session, error) {
	ss, err := e.st.GetSession(ctx, id)
	if err != nil {
		return ss, err
	}
	if (ss.Owner != "" && ss.Owner != caller.Address && !caller.SeesAll) || e.expired(ss) {
		return store.Session{}, fmt.Errorf("session %s: %w", id, store.ErrNotFound)
	}
	return ss, nil
}

// interrupt cancels the session's run, if the caller owns it.
func (e *hostEngine) interrupt(id string, caller Caller) bool {
	return e.core.Interrupt(id, caller.Address, errInterrupted)
}

var errInterrupted = errors.New("interrupted by the client")

// sweep deletes expired sessions until ctx ends.
func (e *hostEngine) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sweepUploads(e.srv.current().cfg, e.now(), e.log)
		if n, err := e.core.DeleteExpired(ctx, e.now()); err != nil && ctx.Err() == nil {
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
func (e *hostEngine) shutdown(ctx context.Context) { e.core.Shutdown(ctx) }
