package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

// hostYAML is the commented host.yaml that init writes: every key, with
// its default.
const hostYAML = `# .co/host.yaml — settings for "agenthost serve" (and host.Serve in Go).
# Code parameters and command-line flags override this file; this file
# overrides the defaults shown. Secrets (API keys) belong in the environment
# or a .env file, never here.

# What the agent does, for /info and discovery.
summary: A helpful assistant hosted by agenthost
# 2-5 example prompts, shown on the /docs page.
examples:
  - "use add on 2 and 3"
  - "My name is Ada"

# The agent's name (for the agent "agenthost serve" builds).
name: assistant
# The model, as provider/model: offline/demo needs no key; others read their
# key from the environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...).
model: offline/demo
# The system prompt: text, or the path of a .md/.txt file next to this one.
# system_prompt: prompt.md

# Who may talk to the agent: open (everyone), careful (unsigned callers
# accepted as strangers), strict (valid signatures only) — or a policy
# (docs/trust.md): a mapping, prose judged by the model, or a policy file:
#   trust:
#     allow: [whitelisted, contact]
#     deny: [blocked]
#     onboard: {invite_code: [BETA2026], payment: 10}
#     default: deny          # or allow, or ask (the model judges the prose)
#   trust: "I trust requests from agents that have paid before."
#   trust: policy.md         # YAML front matter + natural-language body
trust: careful
# Addresses always accepted / always refused: a list, or a file with one
# address per line.
# whitelist: whitelist.txt
# blacklist: blacklist.txt

# HTTP port.
port: 8000
# Concurrent agent runs; more requests wait in a queue, and past it get 503.
workers: 8
# How long finished sessions are kept, in seconds (24 hours).
result_ttl: 86400
# Relay to announce to, so the agent is reachable from anywhere; empty
# disables it.
relay_url: ""
# Rebuild the agent when this file or the prompt file changes (development).
reload: false
# Data directory: keys, sessions database, uploads. Default: .co next to
# where agenthost runs.
# co_dir: .co

# Uploads: largest file in MB, and files (and images) per request.
max_file_size: 10
max_files_per_request: 10
`

func init() {
	var dir string
	var force bool
	register(&Command{
		Name:  "init",
		Usage: "[--dir DIR] [--force]",
		Short: "write a commented .co/host.yaml and create the agent's keys",
		Long: `Creates DIR/.co/host.yaml with every setting and its default, and the agent's
identity key in DIR/.co/keys/agent.key (mode 0600), then prints the agent's
address. An existing host.yaml is kept unless --force is given; an existing
key is always kept.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "", "project directory (default: the working directory)")
			fs.BoolVar(&force, "force", false, "overwrite an existing host.yaml")
		},
		Run: func(_ context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return Usagef("init takes no arguments, got %q", args[0])
			}
			root := dir
			if root == "" {
				root = env.Dir
			} else if !filepath.IsAbs(root) {
				root = filepath.Join(env.Dir, root)
			}
			coDir := filepath.Join(root, host.DefaultCoDir)
			if err := os.MkdirAll(coDir, 0o700); err != nil {
				return err
			}
			path := filepath.Join(coDir, host.ConfigFileName)
			_, err := os.Stat(path)
			switch {
			case err == nil && !force:
				fmt.Fprintf(env.Stdout, "kept %s (use --force to overwrite)\n", path)
			case err == nil || errors.Is(err, os.ErrNotExist):
				if err := os.WriteFile(path, []byte(hostYAML), 0o644); err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "wrote %s\n", path)
			default:
				return err
			}
			id, created, err := trust.LoadOrCreateIdentity(coDir)
			if err != nil {
				return err
			}
			verb := "using"
			if created {
				verb = "created"
			}
			fmt.Fprintf(env.Stdout, "%s identity %s (%s)\n", verb, id.Address(), filepath.Join(coDir, trust.KeyFile))
			fmt.Fprintln(env.Stdout, "Keep .co/keys out of version control. Next: agenthost serve")
			return nil
		},
	})
}
