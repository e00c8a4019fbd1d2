package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/agenthost/agenthost/relay/relayserver"
)

func init() {
	var (
		port, maxConnsPerIP, maxSessions, maxAgents int
		host, trustedProxies                        string
		maxFrameMB                                  float64
		trustProxy, debug                           bool
	)
	register(&Command{
		Name:  "relay",
		Env:   map[string][]string{"port": {"AGENTHOST_PORT", "PORT"}},
		Usage: "[--port N] [--host ADDR] [--max-frame-mb N] [--trust-proxy] [--trusted-proxies CIDRS]",
		Short: "run a relay: reach agents behind NAT, and discover them",
		Long: `Runs an agenthost relay. Agents behind NAT keep one WebSocket open to
ws://HOST:PORT/ws/announce (set relay_url in their host.yaml); clients reach
them through ws://HOST:PORT/ws/input, look them up at
/api/relay/agents/{address} and search them at /api/agents?q=words.
/health, /ready and /metrics (Prometheus) are for operators.

The relay keeps everything in memory, writes nothing to disk and never logs
what agents and clients say. Put it behind a TLS-terminating proxy to serve
wss:// (pass --trust-proxy so per-IP limits see client addresses).
See docs/relay.md.`,
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&port, "port", 8765, "port to listen on")
			fs.StringVar(&host, "host", "", "address to listen on (default: all interfaces)")
			fs.Float64Var(&maxFrameMB, "max-frame-mb", 16, "largest frame relayed, in MiB (images travel inside frames)")
			fs.IntVar(&maxConnsPerIP, "max-conns-per-ip", 256, "concurrent connections from one IP")
			fs.IntVar(&maxSessions, "max-sessions-per-agent", 1024, "concurrent client sessions to one agent")
			fs.IntVar(&maxAgents, "max-agents", 100000, "agents the relay remembers")
			fs.BoolVar(&trustProxy, "trust-proxy", false, "take client IPs from X-Forwarded-For: the right-most hop not a trusted proxy (only behind a proxy that appends to it)")
			fs.StringVar(&trustedProxies, "trusted-proxies", "", "comma-separated IPs/CIDRs of the proxies in front of the relay (implies --trust-proxy; default: the direct peer only)")
			fs.BoolVar(&debug, "debug", false, "log every refused ANNOUNCE and dropped peer (frame types and sizes only): --log-level debug")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return Usagef("relay takes no arguments, got %q", args[0])
			}
			if port < 0 || port > 65535 {
				return Usagef("--port %d: want 0-65535", port)
			}
			if maxFrameMB <= 0 {
				return Usagef("--max-frame-mb must be positive")
			}
			if debug && !env.Given("log-level") && env.fromEnv["log-level"] == "" {
				env.LogLevel.Set(slog.LevelDebug)
			}
			log := env.Logger
			s, err := relayserver.New(relayserver.Config{
				Addr:                net.JoinHostPort(host, strconv.Itoa(port)),
				MaxFrameSize:        int64(maxFrameMB * (1 << 20)),
				MaxConnsPerIP:       maxConnsPerIP,
				MaxSessionsPerAgent: maxSessions,
				MaxAgents:           maxAgents,
				TrustProxy:          trustProxy,
				TrustedProxies:      splitList(trustedProxies),
				Logger:              log,
			})
			if err != nil {
				return err
			}
			if err := s.Start(); err != nil {
				s.Shutdown(context.Background())
				return err
			}
			fmt.Fprintf(env.Stdout, "agenthost relay on %s\n  agents announce to  %s/ws/announce\n  clients connect to  %s/ws/input\n  lookup and search   %s/api/agents\n",
				s.Addr(), s.URL(), s.URL(), "http://"+s.Addr().String())
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := s.Shutdown(sctx); err != nil {
				return fmt.Errorf("relay shutdown: %w", err)
			}
			return nil
		},
	})
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
