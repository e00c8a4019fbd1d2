package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/internal/version"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func init() {
	var (
		relayURL, invite, keys string
		pay                    int64
		unsigned               bool
	)
	register(&Command{
		Name:  "mcp",
		Usage: "[--relay URL] [--keys DIR] [--unsigned] [--invite CODE] [--pay N] URL|ADDRESS",
		Short: "serve a hosted agent to MCP clients (Claude Desktop, editors) over stdio",
		Long: `Runs an MCP server on stdin and stdout whose one tool, "ask", sends a prompt
to the agent at URL, or at ADDRESS (0x…) through a relay, and returns its
answer, with progress notifications while the agent works. The answer
carries the session id; passing it back as session_id continues that
conversation. An MCP client starts it from its configuration, e.g. Claude
Desktop's claude_desktop_config.json:

  {"mcpServers": {"translator": {"command": "agenthost",
    "args": ["mcp", "0x…", "--relay", "wss://relay.example"]}}}

Requests are signed with your key, as with agenthost call: --keys DIR, else
.co/keys/agent.key in the working directory when it has one, else
~/.co/keys/agent.key (created on first use). When the agent asks for a tool
approval or asks a question, the MCP client is asked through MCP
elicitation; a client without it refuses the tool and leaves the question
unanswered. See docs/mcp.md.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&relayURL, "relay", "", "relay for agents given by address (default $AGENTHOST_RELAY_URL)")
			fs.StringVar(&keys, "keys", "", "directory holding keys/agent.key (default .co here, else ~/.co)")
			fs.BoolVar(&unsigned, "unsigned", false, "send unsigned requests (an anonymous caller)")
			fs.StringVar(&invite, "invite", "", "invite code, if the agent asks strangers to onboard")
			fs.Int64Var(&pay, "pay", 0, "credits you agree to pay, at most, if the agent asks strangers to pay to onboard")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) != 1 {
				return Usagef("want one URL or ADDRESS")
			}
			opts := []client.Option{client.WithInviteCode(invite), client.WithPayment(pay)}
			if r := relayURL; r != "" || env.Getenv(client.EnvRelayURL) != "" {
				if r == "" {
					r = env.Getenv(client.EnvRelayURL)
				}
				opts = append(opts, client.WithRelay(r))
			}
			if unsigned {
				opts = append(opts, client.WithoutSigning())
			} else {
				id, err := callerKeys(env, keys)
				if err != nil {
					return err
				}
				opts = append(opts, client.WithKeys(id))
			}
			return serveMCP(ctx, env, args[0], opts)
		},
	})
}

// askInput is the ask tool's arguments.
type askInput struct {
	Prompt    string `json:"prompt" jsonschema:"what to ask or tell the agent"`
	SessionID string `json:"session_id,omitempty" jsonschema:"continue this conversation: the session_id of an earlier answer; leave out to start a new one"`
}

// askOutput is the ask tool's structured result.
type askOutput struct {
	Answer    string `json:"answer" jsonschema:"the agent's answer"`
	SessionID string `json:"session_id" jsonschema:"pass it back as session_id to continue this conversation"`
}

// serveMCP serves the ask tool on env's stdin and stdout until the client
// goes away or ctx ends. The agent is reached once first, so that a wrong
// address or an offline agent fails at start, where the MCP client shows
// it.
func serveMCP(ctx context.Context, env *Env, target string, opts []client.Option) error {
	c, err := client.Connect(ctx, target, opts...)
	if err != nil {
		return err
	}
	who := "the agent " + c.Address()
	var about string
	if info := c.Info(); info != nil {
		if info.Name != "" {
			who = fmt.Sprintf("the agent %q (%s)", info.Name, c.Address())
		}
		about = strings.TrimSpace(info.Summary)
	}
	if c.Address() == "" && c.Info() == nil {
		who = "the agent at " + target
	}
	desc := fmt.Sprintf("Send a prompt to %s, an AI agent hosted with agenthost, and return its answer.", who)
	if about != "" {
		desc += " It says of itself: " + about
	}
	desc += " The answer comes with a session_id: pass it back to continue the same conversation."
	srv := mcp.NewServer(&mcp.Implementation{Name: "agenthost", Title: "agenthost: " + who, Version: version.String()}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "ask", Description: desc, Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptrTo(true)}},
		func(ctx context.Context, req *mcp.CallToolRequest, in askInput) (*mcp.CallToolResult, askOutput, error) {
			return ask(ctx, req, target, opts, in)
		})
	t := &mcp.IOTransport{Reader: io.NopCloser(env.Stdin), Writer: nopWriteCloser{env.Stdout}}
	err = srv.Run(ctx, t)
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil // the client closed our stdin, or we were told to stop
	}
	return err
}

func ptrTo[T any](v T) *T { return &v }

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// ask runs one prompt at the agent. Each call connects on its own, so
// concurrent calls in different sessions do not share a client's session.
func ask(ctx context.Context, req *mcp.CallToolRequest, target string, opts []client.Option, in askInput) (*mcp.CallToolResult, askOutput, error) {
	if strings.TrimSpace(in.Prompt) == "" {
		return nil, askOutput{}, errors.New("prompt is empty")
	}
	c, err := client.Connect(ctx, target, append(opts, client.WithSession(in.SessionID))...)
	if err != nil {
		return nil, askOutput{}, err
	}
	p := &progress{ctx: ctx, ss: req.Session, token: req.Params.GetProgressToken()}
	res, err := c.Input(ctx, in.Prompt,
		client.OnEvent(p.event),
		client.OnApproval(func(ctx context.Context, a client.Approval) (client.Decision, error) {
			return approveByElicitation(ctx, req.Session, a)
		}),
		client.OnQuestion(func(ctx context.Context, q client.Question) ([]string, error) {
			return answerByElicitation(ctx, req.Session, q)
		}))
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) && ce.SessionID != "" && errors.Is(err, client.ErrConnectionLost) {
			return nil, askOutput{}, fmt.Errorf("%w; the run goes on at the agent: ask again with session_id %s", err, ce.SessionID)
		}
		return nil, askOutput{}, err
	}
	out := askOutput{Answer: res.Result, SessionID: res.SessionID}
	return &mcp.CallToolResult{Content: []mcp.Content{
		&mcp.TextContent{Text: res.Result},
		&mcp.TextContent{Text: "session_id: " + res.SessionID + " (pass it as session_id to continue this conversation)"},
	}}, out, nil
}

// progress turns the run's events into MCP progress notifications, when
// the client asked for them (a progress token).
type progress struct {
	ctx   context.Context
	ss    *mcp.ServerSession
	token any
	n     float64
	text  strings.Builder
}

func (p *progress) event(e client.Event) {
	if p.token == nil {
		return
	}
	var msg string
	switch e.Type {
	case client.EventLLMCall:
		msg = "thinking"
	case client.EventStream:
		p.text.WriteString(e.Chunk)
		msg = lastRunes(p.text.String(), 200)
	case client.EventToolCall:
		msg = "running the tool " + e.Name
	case client.EventToolResult:
		msg = fmt.Sprintf("the tool %s %s", e.Name, e.Status)
	case client.EventApproval:
		msg = "waiting for approval of the tool " + e.Name
	case client.EventAskUser:
		msg = "waiting for an answer"
	default:
		return
	}
	p.n++
	_ = p.ss.NotifyProgress(p.ctx, &mcp.ProgressNotificationParams{ProgressToken: p.token, Progress: p.n, Message: msg})
}

func lastRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n:])
}

// approveByElicitation asks the MCP client's user whether the agent may run
// a tool that needs approval. A client that cannot be asked gets the tool
// refused, and the agent is told why: one without elicitation, or one on
// protocol 2026-07-28, where a server asks only by returning input requests
// (SEP-2322), which this bridge does not do yet.
func approveByElicitation(ctx context.Context, ss *mcp.ServerSession, a client.Approval) (client.Decision, error) {
	msg := fmt.Sprintf("The agent wants to run the tool %s with %s. Allow it?", a.Tool, clip(string(a.Arguments), 500))
	if a.Description != "" {
		msg += " (" + a.Description + ")"
	}
	res, err := ss.Elicit(ctx, &mcp.ElicitParams{Message: msg, RequestedSchema: map[string]any{
		"type": "object",
		"properties": map[string]any{
			"allow": map[string]any{"type": "boolean", "title": "Allow " + a.Tool},
		},
		"required": []string{"allow"},
	}})
	if err != nil {
		return client.Decision{Feedback: "the MCP client that relays this conversation cannot ask its user for approval"}, nil
	}
	if res.Action == "accept" {
		if allow, _ := res.Content["allow"].(bool); allow {
			return client.Decision{Approved: true, Scope: "once"}, nil
		}
	}
	return client.Decision{Feedback: "the user said no"}, nil
}

// answerByElicitation puts the agent's question to the MCP client's user;
// without elicitation the answer is empty.
func answerByElicitation(ctx context.Context, ss *mcp.ServerSession, q client.Question) ([]string, error) {
	prop := map[string]any{"type": "string", "title": "Answer"}
	if len(q.Options) > 0 && !q.MultiSelect {
		prop["enum"] = q.Options
	}
	msg := q.Text
	if len(q.Options) > 0 {
		msg += " (" + strings.Join(q.Options, ", ") + ")"
	}
	res, err := ss.Elicit(ctx, &mcp.ElicitParams{Message: msg, RequestedSchema: map[string]any{
		"type":       "object",
		"properties": map[string]any{"answer": prop},
		"required":   []string{"answer"},
	}})
	if err != nil || res.Action != "accept" {
		return nil, nil
	}
	a, _ := res.Content["answer"].(string)
	if q.MultiSelect && strings.Contains(a, ",") {
		parts := strings.Split(a, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts, nil
	}
	return []string{a}, nil
}
