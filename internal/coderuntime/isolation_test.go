package coderuntime

import (
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/coding"
)

// bashOutput runs one approved bash command in a new session and returns
// what the tool reported.
func (rg *rig) bashOutput(t *testing.T, command string) string {
	t.Helper()
	res := rg.send(t, "", `run bash "`+command+`"`)
	rg.waitIdle(t)
	tp := toolParts(rg.history(t, res.SessionID))
	if len(tp) != 1 {
		t.Fatalf("tool parts: %+v", tp)
	}
	return tp[0].State.Output + tp[0].State.Error
}

func allowBash(c *Config) { c.Rules = []coding.Rule{{Permission: "bash", Pattern: "*", Action: coding.Allow}} }

// TestToolEnvironment: tools get an environment built from nothing plus
// the variables AGENTHOST_TOOL_ENV names; the runtime's own (control
// token, model keys) stay out.
func TestToolEnvironment(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "model-key-canary")
	t.Setenv("AGENTHOST_CONTROL_TOKEN", testToken)
	t.Setenv("AGENTHOST_SOMETHING", "runtime-canary")
	t.Setenv("ORG_SECRET", "org-secret-value")
	rg := newRig(t, allowBash)
	out := rg.bashOutput(t, "env")
	for _, leaked := range []string{"model-key-canary", testToken, "runtime-canary", "org-secret-value"} {
		if strings.Contains(out, leaked) {
			t.Errorf("the tools see %q:\n%s", leaked, out)
		}
	}
}
