package platform_test

import (
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/fakellm"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

// TestOperatorModelKeys: the operator's model key and endpoint (--model-env)
// reach every agent loop, so an agent on openai/... answers with no
// organisation secret, but never its tools; an organisation's own secret
// of the same name wins.
func TestOperatorModelKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the real runtime")
	}
	fake := fakellm.NewOpenAI(t)
	r := newRigWith(t, false, agents.Config{
		Command:  []string{platformtest.Agenthost(t), "serve", "--role", "coding"},
		ModelEnv: map[string]string{"OPENAI_API_KEY": "sk-operator", "OPENAI_BASE_URL": fake.URL()},
	}, nil)
	c := r.client("acme")
	id, _ := c.create(map[string]any{"name": "openai-agent", "model": "openai/gpt-test"})

	fake.Push(
		fakellm.Reply{ToolCalls: []fakellm.ToolCall{{Name: "bash", Args: `{"command": "echo key=[$OPENAI_API_KEY] url=[$OPENAI_BASE_URL]"}`}}},
		fakellm.Reply{Text: "done"},
	)
	sid := c.post("/api/v1/agents/"+id+"/messages", map[string]any{"message": "show the key"})["sessionId"].(string)
	perm := c.pendingOne("/api/v1/agents/"+id+"/permissions", "permissions")
	c.post("/api/v1/agents/"+id+"/permissions/"+perm["id"].(string)+"/reply", map[string]any{"reply": "once"})
	c.waitIdle(id)
	var out string
	for _, m := range c.history(id, sid) {
		out += text(m)
	}
	if !strings.Contains(out, "key=[] url=[]") || strings.Contains(out, "sk-operator") {
		t.Fatalf("the operator's model key reached the agent's tools, or the turn failed:\n%s", out)
	}
	reqs := fake.Requests()
	if len(reqs) == 0 || reqs[0].Header.Get("Authorization") != "Bearer sk-operator" {
		t.Fatalf("the agent loop did not call the model with the operator's key: %d requests", len(reqs))
	}

	// The organisation's own key wins for its agents (and, being its
	// secret, reaches its tools).
	c.Do(t, "PUT", "/api/v1/secrets", map[string]any{"key": "OPENAI_API_KEY", "value": "sk-org"}).Want(t, 201)
	id2, _ := c.create(map[string]any{"name": "org-key", "model": "openai/gpt-test"})
	fake.Push(fakellm.Reply{Text: "hello"})
	c.post("/api/v1/agents/"+id2+"/messages", map[string]any{"message": "hi"})
	c.waitIdle(id2)
	reqs = fake.Requests()
	if got := reqs[len(reqs)-1].Header.Get("Authorization"); got != "Bearer sk-org" {
		t.Fatalf("with an organisation secret the model was called with %q, want the organisation's key", got)
	}
}
