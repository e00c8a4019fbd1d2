package coding

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/agenthost/agenthost/agent"
)

// QuestionArgs are the question tool's arguments, the seed's structure:
// {questions: [{question, header, options: [{label, description}],
// multiSelect}]}.
type QuestionArgs struct {
	Questions []agent.Question `json:"questions" jsonschema:"the questions to ask, each with a short header and the options to choose from"`
}

// PendingQuestion is a question request in the shape the platform API
// lists it (seed 003); the runtime's agent.Asker publishes one and waits
// for a QuestionReply.
type PendingQuestion struct {
	ID        string           `json:"id"`
	SessionID string           `json:"sessionID,omitempty"`
	Questions []agent.Question `json:"questions"`
}

// MarshalJSON writes every field of every question, false and empty ones
// included, as the seed's listing shows them; agent.Question omits them.
func (q PendingQuestion) MarshalJSON() ([]byte, error) {
	type option struct {
		Label       string `json:"label"`
		Description string `json:"description"`
	}
	type question struct {
		Question    string   `json:"question"`
		Header      string   `json:"header"`
		Options     []option `json:"options"`
		MultiSelect bool     `json:"multiSelect"`
	}
	out := struct {
		ID        string     `json:"id"`
		SessionID string     `json:"sessionID,omitempty"`
		Questions []question `json:"questions"`
	}{ID: q.ID, SessionID: q.SessionID, Questions: make([]question, len(q.Questions))}
	for i, qq := range q.Questions {
		opts := make([]option, len(qq.Options))
		for j, o := range qq.Options {
			opts[j] = option(o)
		}
		out.Questions[i] = question{Question: qq.Question, Header: qq.Header, Options: opts, MultiSelect: qq.MultiSelect}
	}
	return json.Marshal(out)
}

// QuestionReply is the body of a question reply: one list of chosen
// labels per question, in order.
type QuestionReply struct {
	Answers [][]string `json:"answers"`
}

// ErrBadAnswers is wrapped by ValidateAnswers' error, which an HTTP layer
// maps to 400.
var ErrBadAnswers = errors.New("bad answers")

// QuestionTool lets the model ask the person attached to the run (through
// agent.AskUser) multiple-choice questions, and pause until they answer.
func QuestionTool() agent.Tool {
	return newTool("question", "Ask the user one or more multiple-choice questions and wait for the answers. Use it when a decision is theirs to make "+
		"(approach, scope, naming) rather than guessing. Give each question 2-4 options with a short label and a description; set multiSelect when several may apply. "+
		"The user may also answer in their own words.",
		askQuestions,
		func(_ context.Context, a QuestionArgs) (Request, error) {
			return Request{Permission: "question", Patterns: []string{"*"}}, nil
		})
}

func askQuestions(ctx context.Context, a QuestionArgs) (string, error) {
	if err := ValidateQuestions(a.Questions); err != nil {
		return "", err
	}
	answers, err := agent.AskUser(ctx, a.Questions...)
	if errors.Is(err, agent.ErrNoPerson) {
		return "", fmt.Errorf("%w; decide yourself and say which assumption you made", err)
	}
	if err != nil {
		return "", fmt.Errorf("asking the user: %w", err)
	}
	return FormatAnswers(a.Questions, answers), nil
}

// ValidateQuestions refuses what a person could not answer: no questions,
// a question without text, or one without options. Anything else (long
// lists, missing headers) is let through.
func ValidateQuestions(qs []agent.Question) error {
	if len(qs) == 0 {
		return errors.New("questions: give at least one question")
	}
	for i, q := range qs {
		if strings.TrimSpace(q.Question) == "" {
			return fmt.Errorf("questions[%d]: the question text is empty", i)
		}
		if len(q.Options) == 0 {
			return fmt.Errorf("questions[%d] %q: give at least one option", i, q.Question)
		}
		for j, o := range q.Options {
			if strings.TrimSpace(o.Label) == "" {
				return fmt.Errorf("questions[%d].options[%d]: the label is empty", i, j)
			}
		}
	}
	return nil
}

// ValidateAnswers checks a reply against the questions it answers: one
// inner list per question, at most one label for a single-choice question.
// Labels outside the options are accepted as the person's own words.
func ValidateAnswers(qs []agent.Question, answers [][]string) error {
	if answers == nil {
		return fmt.Errorf("%w: answers is missing", ErrBadAnswers)
	}
	if len(answers) != len(qs) {
		return fmt.Errorf("%w: %d answers for %d questions", ErrBadAnswers, len(answers), len(qs))
	}
	for i, a := range answers {
		if !qs[i].MultiSelect && len(a) > 1 {
			return fmt.Errorf("%w: question %d takes one answer, got %d", ErrBadAnswers, i, len(a))
		}
	}
	return nil
}

// FormatAnswers writes the answers for the model, each next to its
// question so that the model need not match them up by position.
func FormatAnswers(qs []agent.Question, answers [][]string) string {
	var b strings.Builder
	b.WriteString("The user answered:\n")
	for i, q := range qs {
		var a []string
		if i < len(answers) {
			a = answers[i]
		}
		ans := "(no answer)"
		if len(a) > 0 {
			ans = strings.Join(quoteLabels(a), ", ")
		}
		fmt.Fprintf(&b, "%d. %s → %s\n", i+1, strings.TrimSpace(q.Question), ans)
	}
	return strings.TrimRight(b.String(), "\n")
}

func quoteLabels(ls []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = fmt.Sprintf("%q", l)
	}
	return out
}
