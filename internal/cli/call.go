package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/trust"
)

func init() {
	var (
		session, relayURL, invite, keys string
		pay                             int64
		unsigned, resume                bool
	)
	register(&Command{
		Name:  "call",
		Usage: "[--session ID] [--relay URL] [--invite CODE] [--pay N] [--unsigned] URL|ADDRESS PROMPT\n       agenthost call --resume --session ID URL|ADDRESS",
		Short: "send a prompt to a hosted agent and stream the answer",
		Env:   map[string][]string{"relay": {client.EnvRelayURL}},
		Long: `Connects to the agent at URL (http://localhost:8000, host:port or ws://…/ws),
or at ADDRESS (0x…) through a relay, sends PROMPT and streams the answer,
showing tool calls as they run. Tools that need approval and questions from
the agent are asked on the terminal. The session id is printed at the end;
pass it with --session to continue the conversation.

Requests are signed with your key: .co/keys/agent.key of the project (the
nearest directory with a .co/, from here up) when it has one, else
~/.co/keys/agent.key (created on first use). An agent given
by address is looked up on the relay (--relay, default $AGENTHOST_RELAY_URL):
its announced endpoints are tried first, the relay carries the session
otherwise. Agents that admit strangers after onboarding take --invite, or --pay N
(up to N credits from the agent's ledger, which its operator grants with
agenthost credits grant).

When the connection drops mid-run (the relay restarted, the network went),
the run goes on at the agent: --resume --session ID picks it up, replaying
what was missed, or prints its answer if it has finished.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&session, "session", "", "continue this session")
			fs.StringVar(&relayURL, "relay", "", "relay for agents given by address (default $AGENTHOST_RELAY_URL)")
			fs.StringVar(&invite, "invite", "", "invite code, if the agent asks strangers to onboard")
			fs.Int64Var(&pay, "pay", 0, "credits you agree to pay, at most, if the agent asks strangers to pay to onboard")
			fs.StringVar(&keys, "keys", "", "directory holding keys/agent.key (default .co here, else ~/.co)")
			fs.BoolVar(&unsigned, "unsigned", false, "send unsigned requests (an anonymous caller)")
			fs.BoolVar(&resume, "resume", false, "follow the run of --session to its end instead of sending a prompt")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			switch {
			case resume && (session == "" || len(args) != 1):
				return Usagef("--resume wants --session ID and URL or ADDRESS, and no prompt")
			case !resume && len(args) < 2:
				return Usagef("want URL or ADDRESS, and PROMPT")
			}
			opts := []client.Option{client.WithSession(session), client.WithInviteCode(invite), client.WithPayment(pay)}
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
			prompt := strings.Join(args[1:], " ")
			if resume {
				prompt = ""
			}
			return call(ctx, env, args[0], prompt, opts)
		},
	})
}

// callerKeys loads (or creates) the key `call` signs with: in dir when
// given, else the project's .co (the nearest from the working directory
// up) when it holds a key, else ~/.co; without a home directory, the
// project's .co.
func callerKeys(env *Env, dir string) (*trust.Identity, error) {
	if dir == "" {
		proj, err := findProject(env)
		if err != nil {
			return nil, err
		}
		local := filepath.Join(proj.Root, ".co")
		dir = local
		if _, err := os.Stat(filepath.Join(local, trust.KeyFile)); err != nil {
			if home := env.Getenv("HOME"); home != "" {
				dir = filepath.Join(home, ".co")
			}
		}
	} else if !filepath.IsAbs(dir) {
		dir = filepath.Join(env.Dir, dir)
	}
	id, created, err := trust.LoadOrCreateIdentity(dir)
	if err != nil {
		return nil, fmt.Errorf("your key: %w", err)
	}
	if created {
		fmt.Fprintf(env.Stderr, "created your identity %s (%s)\n", id.Address(), filepath.Join(dir, trust.KeyFile))
	}
	return id, nil
}

// call sends prompt, or resumes the client's session when prompt is "".
func call(ctx context.Context, env *Env, target, prompt string, opts []client.Option) error {
	in := bufio.NewReader(env.Stdin)
	midLine := false
	newline := func() {
		if midLine {
			fmt.Fprintln(env.Stdout)
			midLine = false
		}
	}
	opts = append(opts,
		client.WithQuestionHandler(func(_ context.Context, q client.Question) ([]string, error) {
			newline()
			fmt.Fprintf(env.Stderr, "? %s", q.Text)
			if len(q.Options) > 0 {
				fmt.Fprintf(env.Stderr, " %v", q.Options)
			}
			fmt.Fprint(env.Stderr, ": ")
			line, _ := in.ReadString('\n')
			line = strings.TrimSpace(line)
			if q.MultiSelect && strings.Contains(line, ",") {
				parts := strings.Split(line, ",")
				for i := range parts {
					parts[i] = strings.TrimSpace(parts[i])
				}
				return parts, nil
			}
			return []string{line}, nil
		}),
		client.WithApprovalHandler(func(_ context.Context, a client.Approval) (client.Decision, error) {
			newline()
			fmt.Fprintf(env.Stderr, "? allow %s %s — [y]es once, [s]ession, [N]o: ", a.Tool, a.Arguments)
			line, _ := in.ReadString('\n')
			switch strings.ToLower(strings.TrimSpace(line)) {
			case "y", "yes":
				return client.Decision{Approved: true, Scope: "once"}, nil
			case "s", "session":
				return client.Decision{Approved: true, Scope: "session"}, nil
			}
			return client.Decision{Feedback: "the user said no"}, nil
		}))
	c, err := client.Connect(ctx, target, opts...)
	if err != nil {
		return err
	}
	if c.Relayed() {
		fmt.Fprintf(env.Stderr, "(through the relay to %s)\n", c.Address())
	}
	streamed := false
	// The session id is printed as soon as it is known, so that a call
	// stopped with Ctrl-C can still be resumed.
	printed := ""
	sayID := func(id string) {
		if id != "" && id != printed {
			newline()
			fmt.Fprintf(env.Stderr, "session: %s\n", id)
			printed = id
		}
	}
	run := c.Input
	if prompt == "" {
		run = func(ctx context.Context, _ string, opts ...client.InputOption) (*client.Result, error) {
			return c.Resume(ctx, opts...)
		}
	}
	res, err := run(ctx, prompt, client.OnEvent(func(e client.Event) {
		if printed == "" {
			sayID(e.SessionID)
		}
		switch e.Type {
		case client.EventStream:
			fmt.Fprint(env.Stdout, e.Chunk)
			streamed, midLine = true, !strings.HasSuffix(e.Chunk, "\n")
		case client.EventToolCall:
			newline()
			fmt.Fprintf(env.Stderr, "→ %s %s\n", e.Name, e.Args)
		case client.EventToolResult:
			fmt.Fprintf(env.Stderr, "← %s %s: %s\n", e.Name, e.Status, clip(e.Result, 200))
		}
	}))
	if res != nil {
		if !streamed {
			fmt.Fprint(env.Stdout, res.Result)
			midLine = true
		}
		newline()
		sayID(c.SessionID())
	}
	if errors.Is(err, client.ErrInterrupted) {
		return errors.New("the run was interrupted")
	}
	if err != nil {
		newline()
		var ce *client.Error
		if errors.As(err, &ce) && ce.SessionID != "" && errors.Is(err, client.ErrConnectionLost) {
			return fmt.Errorf("%w\nthe run goes on at the agent; follow it with: agenthost call --resume --session %s %s", err, ce.SessionID, target)
		}
		if ctx.Err() != nil && printed != "" {
			return fmt.Errorf("stopped; the run may go on at the agent; follow it with: agenthost call --resume --session %s %s", printed, target)
		}
	}
	return err
}
