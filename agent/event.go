package agent

import (
	"time"

	"github.com/agenthost/agenthost/llm"
)

// Conversation is the state a run reads and extends. It is plain data:
// hosts store it as JSON and hand it back to resume.
type Conversation struct {
	Messages []llm.Message `json:"messages"`
}

// EventType names a kind of Event.
type EventType string

// The events of a run, in the order they can occur.
const (
	// EventText carries a piece of assistant text as the model writes it.
	EventText EventType = "text"
	// EventLLMCall is emitted before each model call.
	EventLLMCall EventType = "llm_call"
	// EventLLMResult is emitted after each model call.
	EventLLMResult EventType = "llm_result"
	// EventToolCall is emitted before a tool runs.
	EventToolCall EventType = "tool_call"
	// EventToolResult is emitted when a tool finishes.
	EventToolResult EventType = "tool_result"
	// EventMessage is emitted when a message is appended to the
	// conversation, so hosts can persist each step as it happens.
	EventMessage EventType = "message"
	// EventResult is the last event of every run.
	EventResult EventType = "result"
)

// Event is one step of a run. Type says which fields are set.
type Event struct {
	Type EventType
	// Text is the delta of an EventText.
	Text string
	// Iteration counts model calls in this run, from 1.
	Iteration int
	// Model, Duration, Usage and Cost describe an EventLLMResult (Model also
	// an EventLLMCall).
	Model    string
	Duration time.Duration
	Usage    llm.Usage
	Cost     float64
	// ToolCall is set on EventToolCall and EventToolResult.
	ToolCall *llm.ToolCall
	// ToolResult is set on EventToolResult.
	ToolResult *ToolOutcome
	// Message is set on EventMessage.
	Message *llm.Message
	// Result is set on EventResult.
	Result *Result
}

// ToolStatus is how a tool call ended.
type ToolStatus string

// Tool outcomes.
const (
	ToolCompleted ToolStatus = "completed"
	ToolFailed    ToolStatus = "failed"
)

// ToolOutcome is the result of one tool call.
type ToolOutcome struct {
	CallID   string
	Name     string
	Status   ToolStatus
	Output   string
	Duration time.Duration
	// Err is the tool's error when Status is failed.
	Err error
}

// Status is how a run ended.
type Status string

// Run outcomes.
const (
	StatusCompleted Status = "completed"
	// StatusAborted: the context was cancelled.
	StatusAborted Status = "aborted"
	// StatusFailed: the model failed for good.
	StatusFailed Status = "failed"
	// StatusMaxIterations: the run hit its bound on model calls.
	StatusMaxIterations Status = "max_iterations"
	// StatusRejected: a person rejected a tool call without feedback, which
	// ends the turn.
	StatusRejected Status = "rejected"
)

// Result sums up a run.
type Result struct {
	Status Status
	// Text is the final assistant text.
	Text string
	// Err explains a failed or aborted run.
	Err        error
	Usage      llm.Usage
	Cost       float64
	Duration   time.Duration
	Iterations int
}
