// Package testagent holds the tools the host and client tests give their
// agents: the demo tools, a tool that asks the user, and one that tests
// mark as needing approval.
package testagent

import (
	"context"
	"strings"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/demo"
)

type askArgs struct {
	Question string `json:"question"`
}

// Tools are the demo tools plus "ask", which asks the user through
// agent.AskUser (options red and blue), and "danger", which tests mark as
// needing approval.
func Tools() []agent.Tool {
	return append(demo.Tools(),
		agent.MustTool("ask", "Ask the user a question.", func(ctx context.Context, a askArgs) (string, error) {
			ans, err := agent.AskUser(ctx, agent.Question{Question: a.Question, Options: []agent.AnswerOption{{Label: "red"}, {Label: "blue"}}})
			if err != nil {
				return "", err
			}
			return "the user said " + strings.Join(ans[0], ","), nil
		}),
		agent.MustTool("danger", "Do something that needs approval.", func(_ context.Context, a askArgs) (string, error) {
			return "did " + a.Question, nil
		}),
	)
}
