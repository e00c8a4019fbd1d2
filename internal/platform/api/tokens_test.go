package api_test

import (
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

func TestTokens(t *testing.T) {
	backends(t, func(t *testing.T, o platformtest.Options) {
		env := platformtest.Start(t, o)
		c := env.Client(env.Token(t, "acme"))
		other := env.Client(env.Token(t, "globex"))

		created := c.Do(t, "POST", "/api/v1/tokens", map[string]any{"label": "ci"}).Want(t, 201)
		plain, _ := created["token"].(string)
		id, _ := created["id"].(string)
		if !strings.HasPrefix(plain, "ah_live_") || id == "" || created["label"] != "ci" || created["lastUsedAt"] != nil {
			t.Fatalf("create = %v", created)
		}
		wantTS(t, created["createdAt"], "createdAt")

		c.Do(t, "POST", "/api/v1/tokens", map[string]any{}).WantError(t, 400, "label")
		c.Do(t, "POST", "/api/v1/tokens", map[string]any{"label": strings.Repeat("x", 201)}).WantError(t, 400, "label")
		c.Do(t, "POST", "/api/v1/tokens", map[string]any{"label": 5}).WantError(t, 400, "label")

		// The new token works, and lists never carry secrets.
		fresh := env.Client(plain)
		fresh.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)
		list := c.Do(t, "GET", "/api/v1/tokens", nil).Want(t, 200)["tokens"].([]any)
		if len(list) != 2 {
			t.Fatalf("tokens = %v", list)
		}
		for _, it := range list {
			m := it.(map[string]any)
			if _, ok := m["token"]; ok {
				t.Fatalf("a listed token carries its secret: %v", m)
			}
		}

		// Another organization neither sees nor revokes it.
		if l := other.Do(t, "GET", "/api/v1/tokens", nil).Want(t, 200)["tokens"].([]any); len(l) != 1 {
			t.Fatalf("globex sees %v", l)
		}
		other.Do(t, "DELETE", "/api/v1/tokens/"+id, nil).WantError(t, 404, "token not found")
		fresh.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)

		// Revoked: it stops working at once.
		c.Do(t, "DELETE", "/api/v1/tokens/"+id, nil).Want(t, 200)
		c.Do(t, "DELETE", "/api/v1/tokens/"+id, nil).WantError(t, 404, "token not found")
		fresh.Do(t, "GET", "/api/v1/agents", nil).WantError(t, 401, "")
	})
}
