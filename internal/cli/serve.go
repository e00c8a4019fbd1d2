package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/agent/fstools"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/demo"
	"github.com/joho/godotenv"
)

func init() {
	var port int
	var config, coDir, model, trustLevel, role, workspace, relayURL, publicURL, metricsAddr string
	var reload bool
	var grace time.Duration
	register(&Command{
		Name:  "serve",
		Env:   map[string][]string{"port": {"AGENTHOST_PORT", "PORT"}},
		Usage: "[--port N] [--config FILE] [--co-dir DIR] [--model M] [--trust LEVEL] [--relay-url URL] [--public-url URL] [--reload] | --role coding [--port N] [--workspace DIR] [--model M]",
		Short: "host an agent: HTTP, WebSocket, SSE and the /docs page",
		Long: `Hosts the agent configured in .co/host.yaml (see "agenthost init"): the demo
agent with its tools, on the model from --model ($AGENTHOST_MODEL), host.yaml
or offline/demo, which needs no key. Open http://localhost:8000/docs to talk
to it, or POST http://localhost:8000/input {"prompt": "..."}.

The project is the nearest directory holding a .co/, from the working
directory up (as git finds .git; your home directory's ~/.co, which holds
your own key for "agenthost call", is not a project); without one, the
working directory. serve says which config and identity file it uses.

Flags (and their environment variables) override host.yaml, which overrides
the defaults. Secrets (API keys) come from the environment or a .env file
in the project, never from host.yaml.

On Ctrl-C (or SIGTERM) it stops taking new runs and waits up to
--shutdown-grace for those going on, then interrupts them; a second Ctrl-C
stops at once.

With --role coding it runs instead the coding runtime the platform starts
for each agent: the control API of docs/runtime-control.md on 127.0.0.1,
configured by AGENTHOST_PORT, AGENTHOST_WORKSPACE, AGENTHOST_CONTROL_TOKEN,
AGENTHOST_MODEL and AGENTHOST_HIDDEN_PROMPT.`,
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&port, "port", -1, "HTTP port (default from host.yaml, else 8000)")
			fs.DurationVar(&grace, "shutdown-grace", defaultShutdownGrace, "on Ctrl-C or SIGTERM, how long runs going on may take to finish before they are interrupted")
			fs.StringVar(&config, "config", "", "host.yaml to read (default the project's .co/host.yaml)")
			fs.StringVar(&coDir, "co-dir", "", "data directory: keys, sessions, uploads (default co_dir from host.yaml, else the project's .co)")
			fs.StringVar(&model, "model", "", "model as provider/model (default from host.yaml, else offline/demo)")
			fs.StringVar(&trustLevel, "trust", "", "trust: open, careful, strict, a policy file, or policy prose (default from host.yaml, else careful; see docs/trust.md)")
			fs.BoolVar(&reload, "reload", false, "rebuild the agent when host.yaml or the prompt file changes")
			fs.StringVar(&relayURL, "relay-url", "", "announce to this relay (ws://…; default relay_url from host.yaml, empty disables)")
			fs.StringVar(&publicURL, "public-url", "", "the URL clients should use to reach this host directly (announced to the relay)")
			fs.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics at /metrics on this address (e.g. 127.0.0.1:9464), apart from the agent's public port; empty: none (see docs/operations.md)")
			fs.StringVar(&role, "role", "", `"coding": run the platform's coding runtime instead of a host`)
			fs.StringVar(&workspace, "workspace", "", "with --role coding: the agent's workspace (default $AGENTHOST_WORKSPACE, else the working directory)")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return Usagef("serve takes no arguments, got %q", args[0])
			}
			switch role {
			case "":
			case "coding":
				stop, err := startTracing(ctx, env, "agenthost-runtime")
				if err != nil {
					return err
				}
				defer stop()
				return serveCoding(ctx, env, codingFlags{port: port, workspace: workspace, model: model})
			default:
				return Usagef("unknown --role %q (want coding)", role)
			}
			if grace <= 0 {
				return Usagef("--shutdown-grace must be positive")
			}
			proj, err := findProject(env)
			if err != nil && coDir == "" {
				return err
			}
			// The command owns its process, so it, not the host library,
			// loads .env; variables already set win.
			if err := loadDotEnv(proj.Root); err != nil {
				return err
			}
			opts := []host.Option{host.WithDir(proj.Root), host.WithBannerOutput(env.Stdout),
				host.WithLogger(env.Logger), host.WithShutdownGrace(grace),
				host.WithShutdownNotice(func(grace time.Duration, runs int) {
					fmt.Fprintf(env.Stderr, "shutting down, waiting up to %s for %s… (Ctrl-C again to stop now)\n", grace, plural(runs, "run"))
				})}
			if port >= 0 {
				opts = append(opts, host.WithPort(port))
			}
			if config != "" {
				opts = append(opts, host.WithConfigFile(env.abs(config)))
			}
			if coDir != "" {
				opts = append(opts, host.WithCoDir(env.abs(coDir)))
			}
			if model != "" {
				opts = append(opts, host.WithModel(model))
			}
			if trustLevel != "" {
				opts = append(opts, host.WithTrust(trustLevel))
			}
			if relayURL != "" {
				opts = append(opts, host.WithRelayURL(relayURL))
			}
			if publicURL != "" {
				opts = append(opts, host.WithPublicURL(publicURL))
			}
			if reload {
				opts = append(opts, host.WithReload(true))
			}
			if metricsAddr != "" {
				opts = append(opts, host.WithMetricsAddr(metricsAddr))
			}
			stop, err := startTracing(ctx, env, "agenthost-serve")
			if err != nil {
				return err
			}
			defer stop()
			cfg, err := host.LoadConfig(opts...)
			if err != nil {
				return err
			}
			proj.describe(env.Stdout, cfg)
			name := cfg.Name
			// The default agent reads its caller's uploads with the file tools.
			files := agent.WithTools(fstools.Tools(host.UploadsDir)...)
			return host.Serve(ctx, func() (*agent.Agent, error) { return demo.New(name, "", "", files) }, opts...)
		},
	})
}

// loadDotEnv loads dir/.env, if there is one, into the process environment
// without overriding variables already set: API keys for "serve" live
// there or in the environment, never in host.yaml.
func loadDotEnv(dir string) error {
	path := filepath.Join(dir, ".env")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := godotenv.Load(path); err != nil {
		return fmt.Errorf("loading %s: %w", path, err)
	}
	return nil
}
