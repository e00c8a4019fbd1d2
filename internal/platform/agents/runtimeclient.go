package agents

import (
	"context"
	"errors"
	"time"
)

// Session is a chat thread inside an agent's runtime, as the seed lists it.
type Session struct {
	ID    string
	Title *string // null until the runtime names the session
	// Busy: the session is generating (Status fills it when the runtime
	// says; the seed's session objects do not show it).
	Busy bool
	// MessageID is the id of the message a Prompt sent, when the client
	// knows it (the seed's Quick Start shows it in the create answer).
	MessageID string
}

// RuntimeStatus is what the platform asks a running runtime for when it
// shows an agent: whether any session is generating, and the live sessions.
type RuntimeStatus struct {
	Busy     bool
	Sessions []Session
	// LastError is the most recent failed turn among the sessions whose
	// latest turn failed (nil when none did).
	LastError *TurnError
}

// TurnError is a turn whose model call failed.
type TurnError struct {
	SessionID string
	Message   string
	Time      time.Time
}

// RuntimeClient is the platform's side of one runtime's control API: the
// HTTP API that `agenthost serve --role coding` exposes on its loopback port,
// authenticated with the agent's control token. The second half of the
// platform (messages, usage, abort, files, permissions, questions, events)
// grows this interface; the manager only needs Status and Prompt.
type RuntimeClient interface {
	// Status reports busy and the live sessions.
	Status(ctx context.Context) (RuntimeStatus, error)
	// Prompt sends text as a visible user message, to sessionID or, when it
	// is empty, to a new session, and returns the session. It returns as
	// soon as the runtime accepted the message; the turn runs on.
	Prompt(ctx context.Context, sessionID, text string) (Session, error)
}

// Connector makes the RuntimeClient for the runtime at endpoint (a base
// URL such as http://127.0.0.1:20001), authenticating with controlToken.
type Connector func(endpoint, controlToken string) RuntimeClient

// ErrNoControlAPI is returned by NoControlAPI for calls that need the
// runtime's control API.
var ErrNoControlAPI = errors.New("the runtime control API is not available in this build")

// NoControlAPI is the RuntimeClient used until the runtime's control API
// exists: it reports every runtime idle with no sessions, and cannot
// deliver prompts (ErrNoControlAPI). It is a placeholder with a documented
// behaviour, not an implementation of the control API.
type NoControlAPI struct{}

// Status implements RuntimeClient: always idle, no sessions.
func (NoControlAPI) Status(context.Context) (RuntimeStatus, error) {
	return RuntimeStatus{Sessions: []Session{}}, nil
}

// Prompt implements RuntimeClient: ErrNoControlAPI.
func (NoControlAPI) Prompt(context.Context, string, string) (Session, error) {
	return Session{}, ErrNoControlAPI
}

// ConnectNone is the Connector returning NoControlAPI.
func ConnectNone(string, string) RuntimeClient { return NoControlAPI{} }
