// Package store is the host's durable memory: sessions (who owns them, how
// their last run ended, the conversation state) and each session's
// append-only event log, which lets a client that lost its connection
// replay what it missed.
//
// The host depends only on the Store interface; backends live in
// sub-packages (sqlite) and all of them must pass the storetest conformance
// suite, so another backend is a new package, not a change to the host.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Status is a session's lifecycle state, as the wire protocol spells it.
type Status string

// Session statuses (docs/protocol.md §2).
const (
	StatusRunning         Status = "running"
	StatusWaitingApproval Status = "waiting_approval"
	StatusDone            Status = "done"
	StatusFailed          Status = "failed"
	// StatusInterrupted: the run was stopped (INTERRUPT, shutdown) or the
	// host died while it was running.
	StatusInterrupted Status = "interrupted"
)

// Finished reports whether no run is in progress, i.e. the session may
// expire.
func (s Status) Finished() bool {
	return s == StatusDone || s == StatusFailed || s == StatusInterrupted
}

// Session is one conversation with its latest outcome.
type Session struct {
	ID string
	// Owner is the caller's address; "" for an anonymous caller, whose
	// session is reachable by its unguessable id alone.
	Owner  string
	Status Status
	// Prompt is the latest turn's prompt, Result its answer.
	Prompt string
	Result string
	// State is the host's session object (messages, turn, iteration...)
	// as JSON; the store does not interpret it.
	State   json.RawMessage
	Created time.Time
	Updated time.Time
	// Expires is when a finished session may be deleted; zero while a run
	// is in progress (running sessions never expire).
	Expires  time.Time
	Duration time.Duration
	// Title names the session ("" until it is named).
	Title string
	// Error is why the latest turn failed (the model provider's message),
	// "" when it did not.
	Error string
}

// Event is one entry of a session's log: a server frame as sent to clients.
type Event struct {
	SessionID string
	// ID is assigned by the store on append; ids only grow, within a
	// session and across the store.
	ID      int64
	Type    string
	Data    json.RawMessage
	Created time.Time
	// Note is never stored: what the event's producer knew about Data
	// that a consumer would otherwise parse Data again to learn (the
	// host's OUTPUT carries what its signature covers). Events read back
	// from a store have none, and a consumer must work without it.
	Note any
}

// ListOptions selects sessions for List.
type ListOptions struct {
	// Owner restricts the list to one caller's sessions ("" means the
	// anonymous ones) unless All is set.
	Owner string
	All   bool
	// Limit bounds the result; 0 means 1000, a negative limit none.
	Limit int
	// OldestFirst lists in creation order instead of newest first.
	OldestFirst bool
}

// Store persists sessions and their event logs. Every method returns only
// after its write is committed: the host relies on that to never send a
// client something it could lose in a crash.
type Store interface {
	// CreateSession inserts s; ErrExists if the id is taken.
	CreateSession(ctx context.Context, s Session) error
	// UpdateSession replaces the stored session with the same id;
	// ErrNotFound if there is none.
	UpdateSession(ctx context.Context, s Session) error
	// GetSession returns ErrNotFound for an unknown id, and ErrExpired
	// (which is also ErrNotFound) for the id of a session DeleteExpired
	// removed: such an id stays reserved, so nobody can start a new
	// session under it.
	GetSession(ctx context.Context, id string) (Session, error)
	// ListSessions returns sessions newest first (or oldest first).
	ListSessions(ctx context.Context, opts ListOptions) ([]Session, error)
	// AppendEvents appends evs (SessionID, Type, Data, Created set) in
	// order, atomically, and returns them with their ids.
	AppendEvents(ctx context.Context, evs []Event) ([]Event, error)
	// Events returns a session's events with ids greater than after, oldest
	// first, at most limit of them (0 means all); every session's when
	// sessionID is "".
	Events(ctx context.Context, sessionID string, after int64, limit int) ([]Event, error)
	// LastEventID is the highest event id (0 for none).
	LastEventID(ctx context.Context) (int64, error)
	// PruneEvents keeps the newest keep events of the whole log.
	PruneEvents(ctx context.Context, keep int) error
	// Apply commits c atomically (see Change) and returns its events with
	// their ids.
	Apply(ctx context.Context, c Change) ([]Event, error)
	// Messages returns a session's messages in order.
	Messages(ctx context.Context, sessionID string) ([]Message, error)
	// Inputs returns the inputs in state, of every session, in the order
	// they were accepted.
	Inputs(ctx context.Context, state InputState) ([]Input, error)
	// Request returns one request of a kind; ErrNoRequest if there is none.
	Request(ctx context.Context, kind, id string) (Request, error)
	// Requests returns the requests of a kind ("" for every kind) in
	// state, oldest first.
	Requests(ctx context.Context, kind, state string) ([]Request, error)
	// Grants returns the remembered approvals of the given scopes (every
	// one when none is given), in the order granted.
	Grants(ctx context.Context, scopes ...string) ([]Grant, error)
	// InterruptRunning marks every session still running or waiting for an
	// approval as interrupted, expiring at expires; a host calls it at
	// start-up, when no run of its own can be in progress.
	InterruptRunning(ctx context.Context, now, expires time.Time) (int, error)
	// DeleteExpired deletes finished sessions whose Expires is at or
	// before now, with their events and records, and remembers their ids (see
	// GetSession) for ExpiredIDRetention. Running sessions are never
	// deleted.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
	// Close releases the store.
	Close() error
}

// Errors of Store methods, checked with errors.Is.
var (
	ErrNotFound = errors.New("session not found")
	ErrExists   = errors.New("session already exists")
	// ErrExpired wraps ErrNotFound: the session existed and expired.
	ErrExpired = fmt.Errorf("session expired: %w", ErrNotFound)
)

// ExpiredIDRetention is how long the id of an expired session stays
// reserved after its content is deleted. Ids are random, so this only has
// to outlast any client still holding one.
const ExpiredIDRetention = 30 * 24 * time.Hour
