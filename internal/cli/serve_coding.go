package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/agenthost/agenthost/internal/coderuntime"
	"github.com/agenthost/agenthost/llm"
)

// codingFlags are the serve flags that also apply to --role coding.
type codingFlags struct {
	port      int // -1 when not given
	workspace string
	model     string
}

// platformKeyAdvice says, in a platform's runtime, the two ways a model key
// reaches an agent.
func platformKeyAdvice(env string) string {
	return fmt.Sprintf("%[1]s is not set for this agent: add it as a secret of its organisation "+
		"(PUT /api/v1/secrets {\"key\": \"%[1]s\", \"value\": \"...\"}, or in the agent's scope), or have the platform operator "+
		"export %[1]s where agenthost platform runs (it reaches every agent through --model-env)", env)
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
	log := env.Logger
	if id := env.Getenv("AGENTHOST_AGENT_ID"); id != "" {
		log = log.With("agent", id)
		llm.Default.KeyAdvice = platformKeyAdvice
	}
	s.Logger = log
	return coderuntime.Serve(ctx, s, env.Stdout)
}
