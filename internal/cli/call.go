package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
)

func init() {
	var session string
	register(&Command{
		Name:  "call",
		Usage: "[--session ID] URL PROMPT",
		Short: "send a prompt to a hosted agent and stream the answer",
		Long: `Connects to the agent at URL (http://localhost:8000, host:port or ws://…/ws),
sends PROMPT and streams the answer, showing tool calls as they run. Tools
that need approval and questions from the agent are asked on the terminal.
The session id is printed at the end; pass it with --session to continue
the conversation.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&session, "session", "", "continue this session")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) < 2 {
				return Usagef("want URL and PROMPT")
			}
			return call(ctx, env, args[0], strings.Join(args[1:], " "), session)
		},
	})
}

func call(ctx context.Context, env *Env, url, prompt, session string) error {
	conn, err := dialAgent(ctx, url)
	if err != nil {
		return err
	}
	defer conn.close()
	if session != "" {
		if err := conn.send(ctx, map[string]any{"type": "CONNECT", "session_id": session}); err != nil {
			return err
		}
		f, err := conn.read(ctx)
		if err != nil {
			return err
		}
		if f["type"] == "ERROR" {
			return fmt.Errorf("agent: %s", f.str("message"))
		}
		if f.str("session_id") != session {
			fmt.Fprintf(env.Stderr, "(session %s is not available; a new one was started)\n", session)
		}
	}
	if err := conn.send(ctx, map[string]any{"type": "INPUT", "prompt": prompt}); err != nil {
		return err
	}
	in := bufio.NewReader(env.Stdin)
	streamed, midLine := false, false
	newline := func() {
		if midLine {
			fmt.Fprintln(env.Stdout)
			midLine = false
		}
	}
	for {
		f, err := conn.read(ctx)
		if err != nil {
			return fmt.Errorf("connection to the agent: %w", err)
		}
		switch f["type"] {
		case "STREAM":
			chunk := f.str("chunk")
			fmt.Fprint(env.Stdout, chunk)
			streamed, midLine = true, !strings.HasSuffix(chunk, "\n")
		case "tool_call":
			newline()
			args, _ := json.Marshal(f["args"])
			fmt.Fprintf(env.Stderr, "→ %s %s\n", f.str("name"), args)
		case "tool_result":
			fmt.Fprintf(env.Stderr, "← %s %s: %s\n", f.str("name"), f.str("status"), clip(f.str("result"), 200))
		case "approval_needed":
			newline()
			args, _ := json.Marshal(f["arguments"])
			fmt.Fprintf(env.Stderr, "? allow %s %s — [y]es once, [s]ession, [N]o: ", f.str("tool"), args)
			line, _ := in.ReadString('\n')
			ans := map[string]any{"type": "APPROVAL_RESPONSE", "approved": false}
			switch strings.ToLower(strings.TrimSpace(line)) {
			case "y", "yes":
				ans["approved"], ans["scope"] = true, "once"
			case "s", "session":
				ans["approved"], ans["scope"] = true, "session"
			}
			if err := conn.send(ctx, ans); err != nil {
				return err
			}
		case "ask_user":
			newline()
			fmt.Fprintf(env.Stderr, "? %s", f.str("text"))
			if opts, ok := f["options"].([]any); ok && len(opts) > 0 {
				fmt.Fprintf(env.Stderr, " %v", opts)
			}
			fmt.Fprint(env.Stderr, ": ")
			line, _ := in.ReadString('\n')
			if err := conn.send(ctx, map[string]any{"type": "ASK_USER_RESPONSE", "answer": strings.TrimSpace(line)}); err != nil {
				return err
			}
		case "PING":
			if err := conn.send(ctx, map[string]any{"type": "PONG"}); err != nil {
				return err
			}
		case "OUTPUT":
			if !streamed {
				fmt.Fprint(env.Stdout, f.str("result"))
				midLine = true
			}
			newline()
			fmt.Fprintf(env.Stderr, "session: %s\n", f.str("session_id"))
			if f.str("status") == "interrupted" {
				return errors.New("the run was interrupted")
			}
			return nil
		case "ERROR":
			newline()
			return fmt.Errorf("agent: %s", f.str("message"))
		}
	}
}
