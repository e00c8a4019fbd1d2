// Package demo builds the demo agent that agenthost runs when nothing else
// is configured: the offline model and a few small tools, so that the whole
// tool loop works with no key and no network.
package demo

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agenthost/agenthost/agent"
)

// SystemPrompt is the demo agent's system prompt.
const SystemPrompt = "You are a helpful assistant hosted by agenthost. Use your tools when they help."

// AddArgs are the arguments of the add tool.
type AddArgs struct {
	A float64 `json:"a" jsonschema:"the first number"`
	B float64 `json:"b" jsonschema:"the second number"`
}

// TextArgs are the arguments of the text tools.
type TextArgs struct {
	Text string `json:"text" jsonschema:"the text to work on"`
}

// TimeArgs are the arguments of the current_time tool.
type TimeArgs struct {
	Timezone string `json:"timezone,omitempty" jsonschema:"an IANA time zone such as Europe/Paris; UTC when empty"`
}

// Tools returns the demo tools.
func Tools() []agent.Tool {
	return []agent.Tool{
		agent.MustTool("add", "Add two numbers.", func(_ context.Context, a AddArgs) (float64, error) {
			return a.A + a.B, nil
		}),
		agent.MustTool("word_count", "Count the words in a text.", func(_ context.Context, a TextArgs) (int, error) {
			return len(strings.Fields(a.Text)), nil
		}),
		agent.MustTool("reverse", "Reverse a text.", func(_ context.Context, a TextArgs) (string, error) {
			r := make([]rune, 0, utf8.RuneCountInString(a.Text))
			for _, c := range a.Text {
				r = append(r, c)
			}
			for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
				r[i], r[j] = r[j], r[i]
			}
			return string(r), nil
		}),
		agent.MustTool("current_time", "The current date and time.", func(_ context.Context, a TimeArgs) (string, error) {
			loc := time.UTC
			if a.Timezone != "" {
				l, err := time.LoadLocation(a.Timezone)
				if err != nil {
					return "", err
				}
				loc = l
			}
			return time.Now().In(loc).Format(time.RFC1123), nil
		}),
	}
}

// New returns the demo agent using model ("" for the offline model).
func New(name, model, systemPrompt string, opts ...agent.Option) (*agent.Agent, error) {
	if name == "" {
		name = "assistant"
	}
	if systemPrompt == "" {
		systemPrompt = SystemPrompt
	}
	base := []agent.Option{agent.WithSystemPrompt(systemPrompt), agent.WithTools(Tools()...)}
	if model != "" {
		base = append(base, agent.WithModel(model))
	}
	return agent.New(name, append(base, opts...)...)
}
