package api_test

import (
	"net"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

// These tests need no runtime: with NoDriver every start fails, which
// exercises validation, limits, state errors and isolation. The lifecycle
// with real runtimes is tested in package platform.

func TestCreateAgentValidation(t *testing.T) {
	env := platformtest.Start(t, platformtest.Options{})
	c := env.Client(env.Token(t, "acme"))
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{}, "name: is required"},
		{map[string]any{"name": ""}, "name: is required"},
		{map[string]any{"name": " \t"}, "name: is required"},
		{map[string]any{"name": strings.Repeat("n", 101)}, "name: must be 1-100 characters"},
		{map[string]any{"name": "a", "model": "claude"}, "model: must be"},
		{map[string]any{"name": "a", "model": "anthropic/"}, "model: must be"},
		{map[string]any{"name": "a", "model": "a/b c"}, "model: must be"},
		{map[string]any{"name": "a", "scopeId": "missing"}, "scopeId: scope not found"},
		{map[string]any{"name": "a", "scope": "missing"}, `scope: no scope named "missing"`},
		{map[string]any{"name": "a", "hiddenPrompt": strings.Repeat("h", agents.MaxPromptLen+1)}, "hiddenPrompt: must be at most"},
		{map[string]any{"name": "a", "initialPrompt": strings.Repeat("h", agents.MaxPromptLen+1)}, "initialPrompt: must be at most"},
		{map[string]any{"name": 1}, `field "name" must be a string`},
	} {
		c.Do(t, "POST", "/api/v1/agents", tc.body).WantError(t, 400, tc.want)
	}
	p := c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "p"}).Want(t, 201)["id"].(string)
	c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "q"}).Want(t, 201)
	c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a", "scopeId": p, "scope": "q"}).WantError(t, 400, "different scope")
	if list := c.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)["agents"].([]any); len(list) != 0 {
		t.Fatalf("invalid requests created agents: %v", list)
	}
}

// TestFailedStart: a runtime that cannot start leaves the agent ERROR with
// an errorMsg, answers 503, and ERROR agents refuse start, stop and
// restart with 400 until deleted.
func TestFailedStart(t *testing.T) {
	backends(t, func(t *testing.T, o platformtest.Options) {
		env := platformtest.Start(t, o)
		c := env.Client(env.Token(t, "acme"))
		scope := c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "production"}).Want(t, 201)["id"].(string)
		c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "my-agent", "scope": "production", "model": "anthropic/claude-sonnet-4-6"}).
			WantError(t, 503, "runtime failed to start", "agentId", "status")
		list := c.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)["agents"].([]any)
		if len(list) != 1 {
			t.Fatalf("agents = %v", list)
		}
		a := list[0].(map[string]any)
		id := a["agentId"].(string)
		if a["status"] != "ERROR" || !strings.Contains(a["errorMsg"].(string), "runtime failed to start") || a["scopeId"] != scope ||
			a["model"] != "anthropic/claude-sonnet-4-6" || a["name"] != "my-agent" || a["url"] != env.URL+"/a/"+id {
			t.Fatalf("listed agent = %v", a)
		}
		wantTS(t, a["createdAt"], "createdAt")
		got := c.Do(t, "GET", "/api/v1/agents/"+id, nil).Want(t, 200)
		for _, k := range []string{"agentId", "name", "status", "busy", "url", "sessions", "errorMsg", "createdAt"} {
			if _, ok := got[k]; !ok {
				t.Fatalf("GET agent lacks %q: %v", k, got)
			}
		}
		if got["busy"] != false || len(got["sessions"].([]any)) != 0 {
			t.Fatalf("GET agent = %v", got)
		}
		sc := c.Do(t, "GET", "/api/v1/scopes/"+scope, nil).Want(t, 200)["agents"].([]any)
		if len(sc) != 1 || sc[0].(map[string]any)["status"] != "ERROR" {
			t.Fatalf("scope agents = %v", sc)
		}
		for _, action := range []string{"start", "stop", "restart"} {
			c.Do(t, "POST", "/api/v1/agents/"+id+"/"+action, nil).WantError(t, 400, "the agent is ERROR")
		}
		c.Do(t, "DELETE", "/api/v1/agents/"+id, nil).Want(t, 200)
		c.Do(t, "GET", "/api/v1/agents/"+id, nil).WantError(t, 404, "agent not found")
		c.Do(t, "DELETE", "/api/v1/agents/"+id, nil).WantError(t, 404, "agent not found")
	})
}

func TestAgentLimit(t *testing.T) {
	env := platformtest.Start(t, platformtest.Options{Agents: agents.Config{MaxAgentsPerOrg: 1}})
	c := env.Client(env.Token(t, "acme"))
	c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "one"}).WantError(t, 503, "", "agentId", "status")
	c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "two"}).WantError(t, 429, "agent limit reached")
	// The limit is per organization.
	other := env.Client(env.Token(t, "other"))
	other.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "one"}).WantError(t, 503, "runtime failed to start", "agentId", "status")
}

func TestNoPorts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	env := platformtest.Start(t, platformtest.Options{Agents: agents.Config{Ports: agents.PortRange{Min: port, Max: port}}})
	c := env.Client(env.Token(t, "acme"))
	c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a"}).WantError(t, 503, "no available ports")
	if list := c.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)["agents"].([]any); len(list) != 0 {
		t.Fatalf("a refused agent was recorded: %v", list)
	}
}

// TestIsolation: another organization's ids answer exactly like missing
// ones on every route.
func TestIsolation(t *testing.T) {
	backends(t, func(t *testing.T, o platformtest.Options) {
		env := platformtest.Start(t, o)
		theirs := env.Client(env.Token(t, "theirs"))
		mine := env.Client(env.Token(t, "mine"))
		scope := theirs.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "production"}).Want(t, 201)["id"].(string)
		theirs.Do(t, "PUT", "/api/v1/scopes/"+scope+"/secrets", map[string]any{"key": "K", "value": "v"}).Want(t, 201)
		theirs.Do(t, "PUT", "/api/v1/secrets", map[string]any{"key": "ORG", "value": "v"}).Want(t, 201)
		theirs.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a"}).WantError(t, 503, "", "agentId", "status")
		agent := theirs.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)["agents"].([]any)[0].(map[string]any)["agentId"].(string)

		for _, r := range []struct{ method, path, want string }{
			{"GET", "/api/v1/agents/" + agent, "agent not found"},
			{"DELETE", "/api/v1/agents/" + agent, "agent not found"},
			{"POST", "/api/v1/agents/" + agent + "/start", "agent not found"},
			{"POST", "/api/v1/agents/" + agent + "/stop", "agent not found"},
			{"POST", "/api/v1/agents/" + agent + "/restart", "agent not found"},
			{"GET", "/api/v1/scopes/" + scope, "scope not found"},
			{"DELETE", "/api/v1/scopes/" + scope, "scope not found"},
			{"GET", "/api/v1/scopes/" + scope + "/secrets", "scope not found"},
			{"DELETE", "/api/v1/scopes/" + scope + "/secrets/K", "scope not found"},
			{"DELETE", "/api/v1/secrets/ORG", "secret not found"},
		} {
			foreign := mine.Do(t, r.method, r.path, nil)
			foreign.WantError(t, 404, r.want)
			missingPath := strings.NewReplacer(agent, "c000000000000000000000000", scope, "c000000000000000000000000", "ORG", "NOPE").Replace(r.path)
			if m := mine.Do(t, r.method, missingPath, nil); m.Status != 404 || string(m.Body) != string(foreign.Body) {
				t.Fatalf("%s %s: foreign %s vs missing %s", r.method, r.path, foreign.Body, m.Body)
			}
		}
		mine.Do(t, "PATCH", "/api/v1/scopes/"+scope, map[string]any{"name": "x"}).WantError(t, 404, "scope not found")
		mine.Do(t, "PUT", "/api/v1/scopes/"+scope+"/secrets", map[string]any{"key": "K", "value": "v"}).WantError(t, 404, "scope not found")
		mine.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a", "scopeId": scope}).WantError(t, 400, "scope not found")
		mine.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a", "scope": "production"}).WantError(t, 400, "no scope named")
		for _, path := range []string{"/api/v1/agents", "/api/v1/scopes", "/api/v1/secrets"} {
			m := mine.Do(t, "GET", path, nil).Want(t, 200)
			for _, v := range m {
				if len(v.([]any)) != 0 {
					t.Fatalf("GET %s shows another organization's data: %v", path, m)
				}
			}
		}
		// Same names in two organizations do not clash.
		mine.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "production"}).Want(t, 201)
		mine.Do(t, "PUT", "/api/v1/secrets", map[string]any{"key": "ORG", "value": "mine"}).Want(t, 201)
		// And nothing of theirs changed.
		if n := theirs.Do(t, "GET", "/api/v1/scopes/"+scope, nil).Want(t, 200)["secrets"].([]any); len(n) != 1 {
			t.Fatalf("their scope secrets = %v", n)
		}
	})
}
