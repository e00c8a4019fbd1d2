package cli

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/agenthost/agenthost/client"
)

func init() {
	var relayURL, keys string
	register(&Command{
		Name:  "sessions",
		Usage: "[--keys DIR] URL",
		Short: "list your own sessions on a hosted agent (a signed request)",
		Long: `Lists the sessions you started on the agent at URL, newest first, with
their status: the agent shows a signed caller its own sessions only. The
request is signed with the same key as agenthost call (.co/keys/agent.key
here, else ~/.co). Continue one with:

  agenthost call --session ID URL "..."

Agents reached only through a relay do not list sessions: the relay forwards
the WebSocket protocol, not the HTTP API.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&keys, "keys", "", "directory holding keys/agent.key (default .co here, else ~/.co)")
			fs.StringVar(&relayURL, "relay", "", "relay for agents given by address (default $AGENTHOST_RELAY_URL)")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) != 1 {
				return Usagef("want the agent's URL")
			}
			id, err := callerKeys(env, keys)
			if err != nil {
				return err
			}
			opts := []client.Option{client.WithKeys(id)}
			if r := relayURL; r != "" || env.Getenv(client.EnvRelayURL) != "" {
				if r == "" {
					r = env.Getenv(client.EnvRelayURL)
				}
				opts = append(opts, client.WithRelay(r))
			}
			c, err := client.Connect(ctx, args[0], opts...)
			if err != nil {
				return err
			}
			list, err := c.Sessions(ctx)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintf(env.Stderr, "no sessions of yours (%s) on %s\n", id.Address(), args[0])
				return nil
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SESSION\tSTATUS\tCREATED\tPROMPT")
			for _, s := range list {
				created := "-"
				if s.Created > 0 {
					created = time.Unix(s.Created, 0).Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.SessionID, s.Status, created, clip(s.Prompt, 60))
			}
			return tw.Flush()
		},
	})
}
