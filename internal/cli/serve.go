package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/demo"
	"github.com/joho/godotenv"
)

func init() {
	var port int
	var config, coDir, model, trustLevel, role, workspace, relayURL, publicURL string
	var reload bool
	register(&Command{
		Name:  "serve",
		Usage: "[--port N] [--config FILE] [--co-dir DIR] [--model M] [--trust LEVEL] [--relay-url URL] [--public-url URL] [--reload] | --role coding [--port N] [--workspace DIR] [--model M]",
		Short: "host an agent: HTTP, WebSocket, SSE and the /docs page",
		Long: `Hosts the agent configured in .co/host.yaml (see "agenthost init"): the demo
agent with its tools, on the model from --model, host.yaml, $AGENTHOST_MODEL
or offline/demo, which needs no key. Open http://localhost:8000/docs to talk
to it, or POST http://localhost:8000/input {"prompt": "..."}.

Flags override host.yaml, which overrides the defaults. Secrets (API keys)
come from the environment or a .env file, never from host.yaml.

With --role coding it runs instead the coding runtime the platform starts
for each agent: the control API of docs/runtime-control.md on 127.0.0.1,
configured by AGENTHOST_PORT, AGENTHOST_WORKSPACE, AGENTHOST_CONTROL_TOKEN,
AGENTHOST_MODEL and AGENTHOST_HIDDEN_PROMPT.`,
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&port, "port", -1, "HTTP port (default from host.yaml, else 8000)")
			fs.StringVar(&config, "config", "", "host.yaml to read (default <co-dir>/host.yaml)")
			fs.StringVar(&coDir, "co-dir", "", "data directory: keys, sessions, uploads (default .co)")
			fs.StringVar(&model, "model", "", "model as provider/model (default from host.yaml, $AGENTHOST_MODEL or offline/demo)")
			fs.StringVar(&trustLevel, "trust", "", "trust: open, careful, strict, a policy file, or policy prose (default from host.yaml, else careful; see docs/trust.md)")
			fs.BoolVar(&reload, "reload", false, "rebuild the agent when host.yaml or the prompt file changes")
			fs.StringVar(&relayURL, "relay-url", "", "announce to this relay (ws://…; default relay_url from host.yaml, empty disables)")
			fs.StringVar(&publicURL, "public-url", "", "the URL clients should use to reach this host directly (announced to the relay)")
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
				return serveCoding(ctx, env, codingFlags{port: port, workspace: workspace, model: model})
			default:
				return Usagef("unknown --role %q (want coding)", role)
			}
			// The command owns its process, so it, not the host library,
			// loads .env; variables already set win.
			if err := loadDotEnv(env.Dir); err != nil {
				return err
			}
			opts := []host.Option{host.WithDir(env.Dir), host.WithBannerOutput(env.Stdout),
				host.WithLogger(slog.New(slog.NewTextHandler(env.Stderr, nil)))}
			if port >= 0 {
				opts = append(opts, host.WithPort(port))
			}
			if config != "" {
				opts = append(opts, host.WithConfigFile(config))
			}
			if coDir != "" {
				opts = append(opts, host.WithCoDir(coDir))
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
			cfg, err := host.LoadConfig(opts...)
			if err != nil {
				return err
			}
			if cfg.Model == "" {
				if m := env.Getenv("AGENTHOST_MODEL"); m != "" {
					opts = append(opts, host.WithModel(m))
				}
			}
			name := cfg.Name
			return host.Serve(ctx, func() (*agent.Agent, error) { return demo.New(name, "", "") }, opts...)
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
