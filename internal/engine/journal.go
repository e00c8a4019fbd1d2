package engine

import (
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
)

// A Journal spells what happens in a session as the events of one front
// end's log: the engine decides what happens and when it is durable, the
// journal only how it is written (host's WebSocket frames, the coding
// runtime's control events). Events returns the events to append, Type and
// Data set; Data must be a JSON object. It is called from any goroutine
// and must not block.
type Journal interface {
	Events(h Happening) []store.Event
}

// JournalFunc adapts a function to Journal.
type JournalFunc func(Happening) []store.Event

// Events implements Journal.
func (f JournalFunc) Events(h Happening) []store.Event { return f(h) }

// Happening is one thing that happened in a session: one of the types
// below.
type Happening interface{ happening() }

// SessionCreated: a session was created (by Enqueue; Start creates its
// session with its first turn).
type SessionCreated struct {
	SessionID string
	Time      time.Time
}

// TurnStarted: Message, a user message, begins a turn; it is in the
// session's history from now on.
type TurnStarted struct {
	SessionID string
	Message   llm.Message
	Time      time.Time
}

// TextDelta is assistant text as the model writes it (gathered over the
// engine's TextWindow).
type TextDelta struct {
	SessionID string
	Text      string
	Time      time.Time
}

// ModelCall: a model call begins; Iteration counts the session's model
// calls over its whole life.
type ModelCall struct {
	SessionID string
	Model     string
	Iteration int
	Time      time.Time
}

// ModelResult: a model call answered.
type ModelResult struct {
	SessionID string
	Model     string
	Duration  time.Duration
	Usage     llm.Usage
	Cost      float64
	Time      time.Time
}

// ToolCall: a tool is about to be called (or asked about).
type ToolCall struct {
	SessionID string
	Call      llm.ToolCall
	Time      time.Time
}

// ToolResult: a tool call ended.
type ToolResult struct {
	SessionID string
	Outcome   agent.ToolOutcome
	Time      time.Time
}

// MessageAdded: a message was appended to the history. Prior is the
// conversation before it (a tool message shows with the assistant message
// whose calls it answers). Error is set on the record of a failed model
// call, which people see and the model never does. State is the session
// after the message, for journals that send it whole; it must not be kept.
type MessageAdded struct {
	SessionID string
	Message   llm.Message
	Prior     []llm.Message
	Error     string
	State     *State
	Time      time.Time
}

// RequestPending: a turn asks a person (see Turn.Ask).
type RequestPending struct {
	Request store.Request
	Time    time.Time
}

// RequestResolved: a request was answered (State replied, answered...),
// or ended unanswered (cancelled by abort, expired by a timeout, a
// shutdown or a restart). Request holds the new state and reply.
type RequestResolved struct {
	Request store.Request
	Time    time.Time
}

// Titled: the session was named after its first turn.
type Titled struct {
	SessionID string
	Title     string
	Time      time.Time
}

// TurnEnded: a turn is over and the session's slot is free (a client that
// answers this event at once finds the session idle, unless Busy says more
// input is queued). AgentBusy: some session of the engine is busy.
// Recovered: the turn was found interrupted at start-up, cut short by a
// crash. State is the session after the turn; it must not be kept.
type TurnEnded struct {
	SessionID string
	Outcome   Outcome
	Busy      bool
	AgentBusy bool
	Recovered bool
	State     *State
	Time      time.Time
}

func (SessionCreated) happening()  {}
func (TurnStarted) happening()     {}
func (TextDelta) happening()       {}
func (ModelCall) happening()       {}
func (ModelResult) happening()     {}
func (ToolCall) happening()        {}
func (ToolResult) happening()      {}
func (MessageAdded) happening()    {}
func (RequestPending) happening()  {}
func (RequestResolved) happening() {}
func (Titled) happening()          {}
func (TurnEnded) happening()       {}

// Outcome is how a turn ended.
type Outcome struct {
	// Status is the session's status after it: done, failed or
	// interrupted.
	Status store.Status
	// Result is the agent's word for it (completed, aborted, failed,
	// rejected, max_iterations), or "interrupted" for a turn a crash cut
	// short.
	Result agent.Status
	// Text is the final answer.
	Text string
	// Err explains a turn that did not complete.
	Err       error
	Duration  time.Duration
	Usage     llm.Usage
	Cost      float64
	MessageID string // the user message that began the turn
}

// ResultInterrupted is the Result of a turn a crash cut short.
const ResultInterrupted agent.Status = "interrupted"

// State is a session's conversation and counters: the session object host
// clients hold.
type State struct {
	Messages []llm.Message `json:"messages"`
	// Turn counts finished turns, Iteration model calls; Updated is when
	// the session last changed, in Unix seconds.
	Turn      int     `json:"turn"`
	Iteration int     `json:"iteration"`
	Updated   float64 `json:"updated"`
}
