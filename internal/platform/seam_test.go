package platform_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/agents"
)

// fakeClient stands in for the runtime control API client, to check the
// seam the second half plugs into: what the manager passes it and how its
// answers reach the API.
type fakeClient struct {
	endpoint, token string
	prompts         *atomic.Int32
}

func (f fakeClient) Status(context.Context) (agents.RuntimeStatus, error) {
	title := "Build REST API"
	return agents.RuntimeStatus{Busy: true, Sessions: []agents.Session{{ID: "ses_1", Title: &title}}}, nil
}

func (f fakeClient) Prompt(_ context.Context, sessionID, text string) (agents.Session, error) {
	if sessionID != "" || text != "Build a REST API" {
		return agents.Session{}, fmt.Errorf("unexpected prompt %q to %q", text, sessionID)
	}
	f.prompts.Add(1)
	return agents.Session{ID: "ses_1"}, nil
}

func TestRuntimeClientSeam(t *testing.T) {
	var prompts atomic.Int32
	clients := make(chan fakeClient, 10)
	r := newRig(t, false, agents.Config{Connect: func(endpoint, token string) agents.RuntimeClient {
		c := fakeClient{endpoint: endpoint, token: token, prompts: &prompts}
		clients <- c
		return c
	}})
	c := r.env.Client(r.env.Token(t, "acme"))
	created := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a", "initialPrompt": "Build a REST API"}).Want(t, 200)
	id := created["agentId"].(string)
	sessions := created["sessions"].([]any)
	if prompts.Load() != 1 || len(sessions) != 1 {
		t.Fatalf("create = %v; the initial prompt must be delivered once", created)
	}
	s := sessions[0].(map[string]any)
	if u, _ := s["url"].(string); s["id"] != "ses_1" || s["title"] != nil || !strings.HasPrefix(u, r.env.URL+"/a/"+id+"/session/ses_1?cap=") || len(u) < len(r.env.URL)+40 {
		t.Fatalf("session = %v", s)
	}
	got := status(t, c, id)
	if got["busy"] != true || got["sessions"].([]any)[0].(map[string]any)["title"] != "Build REST API" {
		t.Fatalf("GET = %v", got)
	}
	fc := <-clients
	env := r.runtimeEnv(id)
	if fc.endpoint != r.handle(id).Endpoint || fc.token != env[agents.EnvControlToken] {
		t.Fatalf("client for %q with token %q; runtime has %q", fc.endpoint, fc.token, env[agents.EnvControlToken])
	}
	// A stopped agent is not asked.
	c.Do(t, "POST", "/api/v1/agents/"+id+"/stop", nil).Want(t, 200)
	if got := status(t, c, id); got["busy"] != false || len(got["sessions"].([]any)) != 0 {
		t.Fatalf("stopped agent = %v", got)
	}
}
