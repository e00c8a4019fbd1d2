package agent

import (
	"context"
	"errors"

	"github.com/agenthost/agenthost/llm"
)

// Decision is a person's answer to a tool call that needs approval.
type Decision struct {
	Allow bool
	// Feedback, on a rejection, is shown to the model, which then carries
	// on with it. A rejection without feedback ends the turn.
	Feedback string
}

// Approver decides whether a tool call may run. It may block until a person
// answers; it must return when ctx is done.
type Approver func(ctx context.Context, call llm.ToolCall) (Decision, error)

// Question is a structured multiple-choice question for a person.
type Question struct {
	Question    string         `json:"question"`
	Header      string         `json:"header,omitempty"`
	Options     []AnswerOption `json:"options,omitempty"`
	MultiSelect bool           `json:"multiSelect,omitempty"`
}

// AnswerOption is one choice of a Question.
type AnswerOption struct {
	Label       string `json:"label"`
	Description string `json:"description,omitempty"`
}

// Asker puts questions to a person and waits for the answers: one slice of
// chosen labels (or free text) per question.
type Asker func(ctx context.Context, questions []Question) ([][]string, error)

// ErrNoPerson is returned by AskUser when the run has nobody to ask.
var ErrNoPerson = errors.New("no person is attached to this run to answer")

type askerKey struct{}

// AskUser asks the person attached to the run. Tools call it; hosts attach
// a person with WithAsker.
func AskUser(ctx context.Context, questions ...Question) ([][]string, error) {
	ask, _ := ctx.Value(askerKey{}).(Asker)
	if ask == nil {
		return nil, ErrNoPerson
	}
	return ask(ctx, questions)
}

// RunOption configures one run.
type RunOption func(*runConfig)

type runConfig struct {
	approve Approver
	ask     Asker
	now     func() int64
}

// WithApprover checks each tool call before it runs.
func WithApprover(f Approver) RunOption { return func(c *runConfig) { c.approve = f } }

// WithAsker lets tools ask a person questions through AskUser.
func WithAsker(f Asker) RunOption { return func(c *runConfig) { c.ask = f } }

// WithClock replaces the clock that stamps messages (Unix milliseconds).
func WithClock(now func() int64) RunOption { return func(c *runConfig) { c.now = now } }
