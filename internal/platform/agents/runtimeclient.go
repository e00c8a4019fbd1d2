package agents

import (
	"context"
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
