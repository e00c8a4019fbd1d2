package api_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

func TestScopes(t *testing.T) {
	backends(t, func(t *testing.T, o platformtest.Options) {
		env := platformtest.Start(t, o)
		c := env.Client(env.Token(t, "acme"))

		created := c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "production", "description": "Production environment"}).Want(t, 201)
		id, _ := created["id"].(string)
		if id == "" || created["name"] != "production" || created["description"] != "Production environment" || len(created) != 4 {
			t.Fatalf("create = %v; want id, name, description, createdAt", created)
		}
		wantTS(t, created["createdAt"], "createdAt")
		bare := c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "staging"}).Want(t, 201)
		if d, ok := bare["description"]; !ok || d != nil {
			t.Fatalf("description without one = %v, want null", bare)
		}

		c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "production"}).WantError(t, 409, "already exists")
		c.Do(t, "POST", "/api/v1/scopes", map[string]any{}).WantError(t, 400, "name")
		c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "  "}).WantError(t, 400, "name")
		c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": strings.Repeat("é", 101)}).WantError(t, 400, "1-100")
		c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": strings.Repeat("é", 100)}).Want(t, 201)
		c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "x", "description": strings.Repeat("d", 1001)}).WantError(t, 400, "description")

		c.Do(t, "PUT", "/api/v1/scopes/"+id+"/secrets", map[string]any{"key": "ANTHROPIC_API_KEY", "value": "sk-ant-1"}).Want(t, 201)

		list := c.Do(t, "GET", "/api/v1/scopes", nil).Want(t, 200)
		scopes := list["scopes"].([]any)
		if len(scopes) != 3 {
			t.Fatalf("scopes = %v", scopes)
		}
		// Scopes are listed by creation time; two made in the same
		// millisecond come in either order, so find the first by id.
		var first map[string]any
		for _, sc := range scopes {
			if m := sc.(map[string]any); m["id"] == id {
				first = m
			}
		}
		if first == nil || first["agentCount"] != 0.0 || first["secretCount"] != 1.0 {
			t.Fatalf("first scope = %v", first)
		}
		wantTS(t, first["createdAt"], "createdAt")
		wantTS(t, first["updatedAt"], "updatedAt")

		got := c.Do(t, "GET", "/api/v1/scopes/"+id, nil).Want(t, 200)
		secs := got["secrets"].([]any)
		if got["name"] != "production" || len(got["agents"].([]any)) != 0 || len(secs) != 1 || secs[0].(map[string]any)["key"] != "ANTHROPIC_API_KEY" {
			t.Fatalf("scope details = %v", got)
		}

		// PATCH
		c.Do(t, "PATCH", "/api/v1/scopes/"+id, map[string]any{}).WantError(t, 400, "no fields")
		c.Do(t, "PATCH", "/api/v1/scopes/"+id, map[string]any{"name": "staging"}).WantError(t, 409, "already exists")
		c.Do(t, "PATCH", "/api/v1/scopes/"+id, map[string]any{"name": ""}).WantError(t, 400, "name")
		c.Do(t, "PATCH", "/api/v1/scopes/"+id, map[string]any{"name": nil}).WantError(t, 400, "name")
		c.Do(t, "PATCH", "/api/v1/scopes/"+id, map[string]any{"name": 5}).WantError(t, 400, `field "name"`)
		c.Do(t, "PATCH", "/api/v1/scopes/missing", map[string]any{"name": "x"}).WantError(t, 404, "scope not found")
		up := c.Do(t, "PATCH", "/api/v1/scopes/"+id, map[string]any{"name": "prod", "description": "Updated description"}).Want(t, 200)
		if up["id"] != id || up["name"] != "prod" || up["description"] != "Updated description" || len(up) != 4 {
			t.Fatalf("patch = %v; want id, name, description, updatedAt", up)
		}
		wantTS(t, up["updatedAt"], "updatedAt")
		up = c.Do(t, "PATCH", "/api/v1/scopes/"+id, map[string]any{"description": nil}).Want(t, 200)
		if up["description"] != nil || up["name"] != "prod" {
			t.Fatalf("clearing the description = %v", up)
		}

		// DELETE moves the scope's secrets to org level.
		c.Do(t, "DELETE", "/api/v1/scopes/"+id, nil).Want(t, 200)
		c.Do(t, "DELETE", "/api/v1/scopes/"+id, nil).WantError(t, 404, "scope not found")
		c.Do(t, "GET", "/api/v1/scopes/"+id, nil).WantError(t, 404, "scope not found")
		org := c.Do(t, "GET", "/api/v1/secrets", nil).Want(t, 200)["secrets"].([]any)
		if len(org) != 1 || org[0].(map[string]any)["key"] != "ANTHROPIC_API_KEY" {
			t.Fatalf("org secrets after scope delete = %v", org)
		}
		// The name is free again.
		c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "prod"}).Want(t, 201)
	})
}

func TestSecrets(t *testing.T) {
	backends(t, func(t *testing.T, o platformtest.Options) {
		env := platformtest.Start(t, o)
		c := env.Client(env.Token(t, "acme"))
		const value = "sk-ant-SECRET-VALUE-never-shown"
		var bodies []string
		do := func(method, path string, body any) *platformtest.Response {
			r := c.Do(t, method, path, body)
			bodies = append(bodies, string(r.Body))
			return r
		}

		r := do("PUT", "/api/v1/secrets", map[string]any{"key": "ANTHROPIC_API_KEY", "value": value}).Want(t, 201)
		id := r["id"].(string)
		if r["key"] != "ANTHROPIC_API_KEY" || r["created"] != true || len(r) != 3 {
			t.Fatalf("create = %v", r)
		}
		r = do("PUT", "/api/v1/secrets", map[string]any{"key": "ANTHROPIC_API_KEY", "value": value + "2"}).Want(t, 200)
		if r["id"] != id || r["created"] != false {
			t.Fatalf("update = %v; want the same id, created false", r)
		}
		do("PUT", "/api/v1/secrets", map[string]any{"key": "EMPTY_OK", "value": ""}).Want(t, 201)
		for _, bad := range []map[string]any{
			{"value": "v"}, {"key": "", "value": "v"}, {"key": "lower", "value": "v"}, {"key": "A-B", "value": "v"},
			{"key": "A B", "value": "v"}, {"key": "K"}, {"key": "K", "value": nil}, {"key": strings.Repeat("K", 257), "value": "v"},
		} {
			do("PUT", "/api/v1/secrets", bad).WantError(t, 400, "")
		}
		do("PUT", "/api/v1/secrets", map[string]any{"key": "lower", "value": "v"}).WantError(t, 400, "key: must match ^[A-Z0-9_]+$")
		// Names that change how the tools' programs load or run (issue 11).
		for _, k := range []string{"LD_PRELOAD", "PATH", "BASH_ENV", "PYTHONSTARTUP", "NODE_OPTIONS", "GIT_SSH_COMMAND", "HTTPS_PROXY", "AGENTHOST_CONTROL_TOKEN"} {
			do("PUT", "/api/v1/secrets", map[string]any{"key": k, "value": "v"}).WantError(t, 400, "key: "+k+" is reserved: ")
			do("PUT", "/api/v1/scopes/"+must(t, do("POST", "/api/v1/scopes", map[string]any{"name": "s-" + k}).Want(t, 201)["id"])+"/secrets", map[string]any{"key": k, "value": "v"}).WantError(t, 400, "key: "+k+" is reserved: ")
		}
		do("PUT", "/api/v1/secrets", map[string]any{"key": "K"}).WantError(t, 400, "value: is required")
		do("PUT", "/api/v1/secrets", map[string]any{"key": "K", "value": 5}).WantError(t, 400, `field "value" must be a string`)
		do("PUT", "/api/v1/secrets", map[string]any{"key": "K", "value": strings.Repeat("v", 64<<10+1)}).WantError(t, 400, "value: is longer")

		list := do("GET", "/api/v1/secrets", nil).Want(t, 200)["secrets"].([]any)
		if len(list) != 2 {
			t.Fatalf("secrets = %v", list)
		}
		s0 := list[0].(map[string]any)
		if s0["id"] != id || s0["key"] != "ANTHROPIC_API_KEY" || len(s0) != 4 {
			t.Fatalf("listed secret = %v; want id, key, createdAt, updatedAt only", s0)
		}
		wantTS(t, s0["createdAt"], "createdAt")
		wantTS(t, s0["updatedAt"], "updatedAt")

		// Scoped secrets are separate from org-level ones.
		scope := do("POST", "/api/v1/scopes", map[string]any{"name": "production"}).Want(t, 201)["id"].(string)
		do("PUT", "/api/v1/scopes/"+scope+"/secrets", map[string]any{"key": "ANTHROPIC_API_KEY", "value": value}).Want(t, 201)
		do("PUT", "/api/v1/scopes/"+scope+"/secrets", map[string]any{"key": "ANTHROPIC_API_KEY", "value": value}).Want(t, 200)
		sl := do("GET", "/api/v1/scopes/"+scope+"/secrets", nil).Want(t, 200)["secrets"].([]any)
		if len(sl) != 1 || sl[0].(map[string]any)["id"] == id {
			t.Fatalf("scope secrets = %v", sl)
		}
		do("GET", "/api/v1/scopes/"+scope, nil).Want(t, 200)
		do("GET", "/api/v1/scopes/missing/secrets", nil).WantError(t, 404, "scope not found")
		do("PUT", "/api/v1/scopes/missing/secrets", map[string]any{"key": "K", "value": "v"}).WantError(t, 404, "scope not found")
		do("DELETE", "/api/v1/scopes/missing/secrets/K", nil).WantError(t, 404, "scope not found")
		do("DELETE", "/api/v1/scopes/"+scope+"/secrets/NOPE", nil).WantError(t, 404, "secret not found")
		do("DELETE", "/api/v1/scopes/"+scope+"/secrets/ANTHROPIC_API_KEY", nil).Want(t, 200)
		if n := len(do("GET", "/api/v1/secrets", nil).Want(t, 200)["secrets"].([]any)); n != 2 {
			t.Fatalf("deleting a scoped secret changed org-level ones: %d left", n)
		}
		do("DELETE", "/api/v1/secrets/ANTHROPIC_API_KEY", nil).Want(t, 200)
		do("DELETE", "/api/v1/secrets/ANTHROPIC_API_KEY", nil).WantError(t, 404, "secret not found")

		// The value was never in a response or a log line.
		for _, b := range bodies {
			if strings.Contains(b, "SECRET-VALUE") {
				t.Fatalf("a response contains the secret value: %s", b)
			}
		}
		if strings.Contains(env.Logs.String(), "SECRET-VALUE") {
			t.Fatal("the logs contain the secret value")
		}
		if !strings.Contains(env.Logs.String(), "path=/api/v1/secrets") {
			t.Fatal("the request log is missing; the leak check above proves nothing")
		}
	})
}

type rawDB interface{ DB() *sql.DB }

// TestAtRest reads the raw columns: secrets are sealed and tokens hashed.
func TestAtRest(t *testing.T) {
	backends(t, func(t *testing.T, o platformtest.Options) {
		env := platformtest.Start(t, o)
		tok := env.Token(t, "acme")
		c := env.Client(tok)
		const value = "sk-ant-PLAINTEXT-AT-REST"
		c.Do(t, "PUT", "/api/v1/secrets", map[string]any{"key": "K", "value": value}).Want(t, 201)
		db := env.Server.Store().(rawDB).DB()
		var sealed []byte
		if err := db.QueryRow(`SELECT value FROM secrets WHERE key = 'K'`).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if len(sealed) < len(value)+28 || strings.Contains(string(sealed), "PLAINTEXT") {
			t.Fatalf("secret column holds %q: not sealed", sealed)
		}
		var hash []byte
		if err := db.QueryRow(`SELECT hash FROM tokens`).Scan(&hash); err != nil {
			t.Fatal(err)
		}
		secret := strings.TrimPrefix(tok, "ah_live_")
		if len(hash) != 32 || strings.Contains(string(hash), secret) {
			t.Fatalf("token column = %x: want a SHA-256", hash)
		}
		rows, err := db.Query(`SELECT * FROM tokens`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rows.Scan(ptrs...)
			for i, v := range vals {
				if b, ok := v.([]byte); ok && strings.Contains(string(b), secret) || v == any(secret) {
					t.Fatalf("column %s holds the token", cols[i])
				}
			}
		}
	})
}

// must returns v as a string, failing the test when it is not one.
func must(t *testing.T, v any) string {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%v is not a string", v)
	}
	return s
}
