package store

import (
	"encoding/json"
	"errors"
	"time"
)

// The session engine's records beside sessions and events: the
// conversation as rows, the inputs waiting in a session's queue, the
// requests a person was asked (approvals, questions), and the approvals a
// person granted for longer than one call. Each is written through Apply,
// in the same transaction as the events that announce it, so a client never
// sees an event whose record a crash could lose.

// Message is one conversation message of a session, stored as the engine's
// llm.Message JSON. Error marks a record of a failed model call: shown to
// people, never sent to a model.
type Message struct {
	SessionID string
	ID        string
	Data      json.RawMessage
	Error     string
}

// InputState is where an input stands in its session's queue.
type InputState string

// Input states.
const (
	InputQueued      InputState = "queued"
	InputRunning     InputState = "running"
	InputDone        InputState = "done"
	InputInterrupted InputState = "interrupted"
	InputDiscarded   InputState = "discarded"
)

// Input is a user message accepted for a session: queued until its turn
// runs. Data is the user message (llm.Message JSON).
type Input struct {
	ID        string
	SessionID string
	Data      json.RawMessage
	State     InputState
	Created   time.Time
}

// RequestPending is the state of a request nobody answered yet; the other
// states are the front end's words (replied, answered, expired,
// cancelled).
const RequestPending = "pending"

// Request is something a running turn asked a person: a permission, an
// approval, a question. Data and Reply are the front end's JSON.
type Request struct {
	ID        string
	Kind      string
	SessionID string
	// CallID is the tool call the request is about, if any.
	CallID  string
	Data    json.RawMessage
	State   string
	Reply   json.RawMessage
	Created time.Time
}

// Resolution moves a pending request to State with Reply. Apply fails with
// ErrNoRequest when the request does not exist (of that kind) and with
// ErrNotPending when it is no longer pending, and then writes nothing.
type Resolution struct {
	ID    string
	Kind  string
	State string
	Reply json.RawMessage
}

// Grant is an approval remembered beyond one call ("always"): agent-wide
// when Scope is "", else for the session whose id Scope is.
type Grant struct {
	Scope      string
	Permission string
	Pattern    string
	Action     string
}

// Change is what Apply commits in one transaction.
type Change struct {
	// Create inserts a session (ErrExists if its id is taken); Update
	// replaces one (ErrNotFound if there is none).
	Create *Session
	Update *Session
	// Replace deletes the stored messages of the created or updated
	// session before Messages are appended (a client's copy of the
	// conversation won).
	Replace  bool
	Messages []Message
	// Inputs are inserted, or have their state updated when their id
	// exists.
	Inputs []Input
	// DiscardQueued is a session whose queued inputs become discarded.
	DiscardQueued string
	Requests      []Request
	Resolve       []Resolution
	Grants        []Grant
	Events        []Event
}

// Errors of Apply's resolutions.
var (
	ErrNoRequest  = errors.New("no such request")
	ErrNotPending = errors.New("request is no longer pending")
)

// StateError is ErrNotPending naming the state the request is in.
type StateError struct{ State string }

func (e *StateError) Error() string { return "request is " + e.State }

// Unwrap makes a StateError an ErrNotPending.
func (e *StateError) Unwrap() error { return ErrNotPending }
