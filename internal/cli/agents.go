package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/relay"
)

// DefaultRelayURL is the relay `agenthost agents` asks when neither
// --relay nor AGENTHOST_RELAY_URL names one: a relay on this machine, as
// `agenthost relay` runs it.
const DefaultRelayURL = "ws://localhost:8765"

func init() {
	var (
		relayURL      string
		limit, offset int
		asJSON        bool
	)
	register(&Command{
		Name:  "agents",
		Usage: "search [--relay URL] [--limit N] [--offset N] [--json] WORDS…",
		Short: "discover agents announced on a relay",
		Env:   map[string][]string{"relay": {client.EnvRelayURL}},
		Words: []string{"search"},
		Long: `agenthost agents search WORDS asks a relay for the agents whose summary,
examples or tool names match WORDS, best first, and prints their address,
status, name and summary. Call one with: agenthost call 0x… "prompt".

The relay is --relay, else $AGENTHOST_RELAY_URL, else ` + DefaultRelayURL + `.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&relayURL, "relay", "", "relay URL (default $AGENTHOST_RELAY_URL, else "+DefaultRelayURL+")")
			fs.IntVar(&limit, "limit", 20, "agents per page")
			fs.IntVar(&offset, "offset", 0, "skip this many matches (for the next page)")
			fs.BoolVar(&asJSON, "json", false, "print the relay's JSON answer")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) == 0 || args[0] != "search" {
				return Usagef(`want "search WORDS"`)
			}
			r := relayURL
			if r == "" {
				r = env.Getenv(client.EnvRelayURL)
			}
			if r == "" {
				r = DefaultRelayURL
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			res, err := relay.SearchAgents(ctx, http.DefaultClient, r, strings.Join(args[1:], " "), limit, offset)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printAgents(env, res)
			return nil
		},
	})
}

func printAgents(env *Env, res *relay.SearchResult) {
	if len(res.Agents) == 0 {
		fmt.Fprintln(env.Stderr, "no agents found")
		return
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tSTATUS\tNAME\tSUMMARY")
	for _, a := range res.Agents {
		var p relay.Profile
		_ = json.Unmarshal(a.Profile, &p)
		status := "offline"
		if a.Online {
			status = "online"
		}
		summary := strings.Join(strings.Fields(a.Summary), " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Address, status, clip(oneLine(p.Alias), 24), clip(summary, 80))
	}
	tw.Flush()
	shown := len(res.Agents)
	if res.NextOffset != nil {
		fmt.Fprintf(env.Stderr, "%d of %d shown; next page: --offset %d\n", shown, res.Total, *res.NextOffset)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
