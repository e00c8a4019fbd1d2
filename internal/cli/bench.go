package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/agenthost/agenthost/internal/bench"
)

func init() {
	var dur time.Duration
	var conc, sessions int
	var list bool
	register(&Command{
		Name:  "bench",
		Usage: "[--duration D] [--concurrency N] [--sessions N] [--list] [FILTER]",
		Short: "run the performance scenarios in-process and print a table",
		Long: `Runs the registered benchmark scenarios (those whose name contains FILTER)
on loopback, in this process, and prints one row per figure: POST /input
throughput and latency beside a bare net/http handler, WebSocket streaming
rate and chunk latency, memory per idle WebSocket session, and /health
latency under load.`,
		Flags: func(fs *flag.FlagSet) {
			fs.DurationVar(&dur, "duration", 3*time.Second, "how long each throughput measurement runs")
			fs.IntVar(&conc, "concurrency", 32, "concurrent clients")
			fs.IntVar(&sessions, "sessions", 200, "sessions for the load and idle scenarios")
			fs.BoolVar(&list, "list", false, "list the scenarios and exit")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if list {
				for _, s := range bench.Scenarios() {
					fmt.Fprintf(env.Stdout, "%-28s %s\n", s.Name, s.Description)
				}
				return nil
			}
			filter := ""
			if len(args) > 0 {
				filter = args[0]
			}
			return bench.Run(ctx, env.Stdout, filter, bench.Options{Duration: dur, Concurrency: conc, Sessions: sessions})
		},
	})
}
