package cli

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/agenthost/agenthost/internal/coderuntime"
)

// codingFlags are the serve flags that also apply to --role coding.
type codingFlags struct {
	port      int // -1 when not given
	workspace string
	model     string
}

// serveCoding runs the platform's coding runtime (docs/runtime-control.md)
// until ctx ends: settings from the environment, flags on top.
func serveCoding(ctx context.Context, env *Env, f codingFlags) error {
	s, err := coderuntime.FromEnv(env.Getenv, env.Dir)
	if err != nil {
		return err
	}
	if f.port >= 0 {
		s.Port = f.port
	}
	if f.workspace != "" {
		s.Workspace = f.workspace
		if !filepath.IsAbs(s.Workspace) {
			s.Workspace = filepath.Join(env.Dir, s.Workspace)
		}
	}
	if f.model != "" {
		s.Model = f.model
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	if id := env.Getenv("AGENTHOST_AGENT_ID"); id != "" {
		log = log.With("agent", id)
	}
	s.Logger = log
	return coderuntime.Serve(ctx, s, env.Stdout)
}
