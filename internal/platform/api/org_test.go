package api_test

import (
	"testing"

	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

// TestOrgDefaultModel: an organization's default model is used for its
// agents created without one; the platform's default stays the fallback
// and other organizations are unaffected.
func TestOrgDefaultModel(t *testing.T) {
	backends(t, func(t *testing.T, o platformtest.Options) {
		env := platformtest.Start(t, o)
		c := env.Client(env.Token(t, "acme"))
		other := env.Client(env.Token(t, "globex"))

		got := c.Do(t, "GET", "/api/v1/org", nil).Want(t, 200)
		if got["defaultModel"] != nil || got["effectiveDefaultModel"] != "offline/demo" || got["id"] == "" {
			t.Fatalf("GET org = %v", got)
		}
		wantTS(t, got["createdAt"], "createdAt")
		for _, body := range []any{map[string]any{}, map[string]any{"defaultModel": "claude"}, map[string]any{"defaultModel": 3}, map[string]any{"color": "red"}} {
			c.Do(t, "PATCH", "/api/v1/org", body).WantError(t, 400, "")
		}
		got = c.Do(t, "PATCH", "/api/v1/org", map[string]any{"defaultModel": "anthropic/claude-sonnet-4-6"}).Want(t, 200)
		if got["defaultModel"] != "anthropic/claude-sonnet-4-6" || got["effectiveDefaultModel"] != "anthropic/claude-sonnet-4-6" {
			t.Fatalf("PATCH org = %v", got)
		}

		model := func(c *platformtest.Client, name string, body map[string]any) string {
			body["name"] = name
			c.Do(t, "POST", "/api/v1/agents", body) // NoDriver: the start fails, the record stays
			for _, a := range c.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)["agents"].([]any) {
				if m := a.(map[string]any); m["name"] == name {
					return m["model"].(string)
				}
			}
			t.Fatalf("agent %s not listed", name)
			return ""
		}
		if m := model(c, "a", map[string]any{}); m != "anthropic/claude-sonnet-4-6" {
			t.Errorf("agent without model got %q, want the organization's default", m)
		}
		if m := model(c, "b", map[string]any{"model": "openai/gpt-4o-mini"}); m != "openai/gpt-4o-mini" {
			t.Errorf("explicit model got %q", m)
		}
		if m := model(other, "c", map[string]any{}); m != "offline/demo" {
			t.Errorf("another organization's agent got %q, want the platform default", m)
		}
		c.Do(t, "PATCH", "/api/v1/org", map[string]any{"defaultModel": nil}).Want(t, 200)
		if m := model(c, "d", map[string]any{}); m != "offline/demo" {
			t.Errorf("after clearing, agent got %q, want the platform default", m)
		}
		env.Client("").Do(t, "GET", "/api/v1/org", nil).WantError(t, 401, "")
	})
}
