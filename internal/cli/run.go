package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/demo"
	"github.com/agenthost/agenthost/llm"
)

func init() {
	var model, system string
	register(&Command{
		Name:  "run",
		Usage: "[--model provider/model] PROMPT",
		Short: "run the agent once in the terminal",
		Long: `Runs the demo agent on PROMPT, streaming its answer and showing tool calls as
they happen. With no --model (and no AGENTHOST_MODEL) it uses offline/demo,
which needs no key: try  agenthost run "use add on 2 and 3".`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&model, "model", "", "model as provider/model (default $AGENTHOST_MODEL or offline/demo)")
			fs.StringVar(&system, "system", "", "system prompt")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) == 0 {
				return Usagef("missing PROMPT")
			}
			a, err := demo.New("assistant", model, system)
			if err != nil {
				return err
			}
			var conv agent.Conversation
			res := streamRun(ctx, env.Stdout, env.Stderr, a, &conv, strings.Join(args, " "))
			if res.Status != agent.StatusCompleted {
				if res.Err != nil {
					return fmt.Errorf("run %s: %w", res.Status, res.Err)
				}
				return fmt.Errorf("run %s", res.Status)
			}
			return nil
		},
	})
}

// streamRun runs one prompt, writing the answer to out as it streams and
// tool activity to info.
func streamRun(ctx context.Context, out, info io.Writer, a *agent.Agent, conv *agent.Conversation, prompt string) *agent.Result {
	var res *agent.Result
	midLine := false
	for ev := range a.Run(ctx, conv, []llm.Message{llm.UserText(prompt)}) {
		switch ev.Type {
		case agent.EventText:
			fmt.Fprint(out, ev.Text)
			midLine = !strings.HasSuffix(ev.Text, "\n")
		case agent.EventToolCall:
			if midLine {
				fmt.Fprintln(out)
				midLine = false
			}
			fmt.Fprintf(info, "→ %s %s\n", ev.ToolCall.Name, ev.ToolCall.Args)
		case agent.EventToolResult:
			o := ev.ToolResult
			text := o.Output
			if o.Err != nil {
				text = o.Err.Error()
			}
			fmt.Fprintf(info, "← %s %s in %s: %s\n", o.Name, o.Status, o.Duration.Round(1e5), clip(text, 200))
		case agent.EventResult:
			res = ev.Result
		}
	}
	if midLine {
		fmt.Fprintln(out)
	}
	return res
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
