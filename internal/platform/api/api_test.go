package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/auth"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

// backends runs a test against SQLite and PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, o platformtest.Options)) {
	for _, pg := range []bool{false, true} {
		name := "sqlite"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, platformtest.Options{Postgres: pg})
		})
	}
}

var tsRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func wantTS(t *testing.T, v any, what string) {
	t.Helper()
	s, _ := v.(string)
	if !tsRE.MatchString(s) {
		t.Fatalf("%s = %v, want an ISO 8601 UTC timestamp with milliseconds", what, v)
	}
}

// TestHealth: /health answers, and says whether the agents' tools are
// sandboxed; with --insecure-no-sandbox the platform also warns in its log.
func TestHealth(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		env := platformtest.Start(t, platformtest.Options{Configure: func(c *platform.Config) { c.InsecureNoSandbox = insecure }})
		m := env.Client("").Do(t, "GET", "/health", nil).Want(t, 200)
		want := map[bool]string{false: "enabled", true: "disabled"}[insecure]
		if m["status"] != "ok" || m["sandbox"] != want {
			t.Errorf("insecure %v: health = %v, want sandbox %q", insecure, m, want)
		}
		if warned := strings.Contains(env.Logs.String(), "level=WARN msg=\"INSECURE: the sandbox is disabled"); warned != insecure {
			t.Errorf("insecure %v: warning logged %v:\n%s", insecure, warned, env.Logs.String())
		}
	}
}

// every /api/v1 route of this half, for auth and method checks.
var routes = []struct{ method, path string }{
	{"GET", "/api/v1/agents"}, {"POST", "/api/v1/agents"}, {"GET", "/api/v1/agents/x"}, {"DELETE", "/api/v1/agents/x"},
	{"POST", "/api/v1/agents/x/start"}, {"POST", "/api/v1/agents/x/stop"}, {"POST", "/api/v1/agents/x/restart"},
	{"GET", "/api/v1/scopes"}, {"POST", "/api/v1/scopes"}, {"GET", "/api/v1/scopes/x"}, {"PATCH", "/api/v1/scopes/x"},
	{"DELETE", "/api/v1/scopes/x"}, {"GET", "/api/v1/scopes/x/secrets"}, {"PUT", "/api/v1/scopes/x/secrets"},
	{"DELETE", "/api/v1/scopes/x/secrets/K"}, {"GET", "/api/v1/secrets"}, {"PUT", "/api/v1/secrets"}, {"DELETE", "/api/v1/secrets/K"},
	{"GET", "/api/v1/nope"},
}

func TestAuthentication(t *testing.T) {
	env := platformtest.Start(t, platformtest.Options{})
	good := env.Token(t, "acme")
	for _, r := range routes {
		env.Client("").Do(t, r.method, r.path, nil).WantError(t, 401, "missing API token")
		env.Client(auth.Prefix+"bogus").Do(t, r.method, r.path, nil).WantError(t, 401, "invalid API token")
		env.Client("not-a-token").Do(t, r.method, r.path, nil).WantError(t, 401, "invalid API token")
		if resp := env.Client(good).Do(t, r.method, r.path, nil); resp.Status == 401 {
			t.Fatalf("%s %s with a good token: 401", r.method, r.path)
		}
	}
	resp := env.Client("").Do(t, "GET", "/api/v1/scopes", nil)
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	// A client that only knows the seed's prefix still gets in.
	seedStyle := auth.SeedPrefix + strings.TrimPrefix(good, auth.Prefix)
	env.Client(seedStyle).Do(t, "GET", "/api/v1/scopes", nil).Want(t, 200)
	// Basic auth is not a token.
	req, _ := http.NewRequest("GET", env.URL+"/api/v1/scopes", nil)
	req.SetBasicAuth("u", good)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 401 {
		t.Fatalf("basic auth: %d", r2.StatusCode)
	}
}

func TestRevokedTokenStopsWorking(t *testing.T) {
	env := platformtest.Start(t, platformtest.Options{})
	tok := env.Token(t, "acme")
	c := env.Client(tok)
	c.Do(t, "GET", "/api/v1/scopes", nil).Want(t, 200)
	list, err := auth.List(t.Context(), env.Server.Store(), "acme")
	if err != nil || len(list) != 1 {
		t.Fatalf("tokens = %v, %v", list, err)
	}
	if list[0].LastUsedAt.IsZero() {
		t.Fatal("last use was not recorded")
	}
	if err := auth.Revoke(t.Context(), env.Server.Store(), "acme", list[0].ID); err != nil {
		t.Fatal(err)
	}
	c.Do(t, "GET", "/api/v1/scopes", nil).WantError(t, 401, "invalid API token")
}

func TestNotFoundAndMethods(t *testing.T) {
	env := platformtest.Start(t, platformtest.Options{})
	c := env.Client(env.Token(t, "acme"))
	c.Do(t, "GET", "/api/v1/nope", nil).WantError(t, 404, "not found")
	c.Do(t, "GET", "/nope", nil).WantError(t, 404, "not found")
	resp := c.Do(t, "PATCH", "/api/v1/agents", nil)
	resp.WantError(t, 405, "not allowed")
	if allow := resp.Header.Get("Allow"); allow != "GET, POST" {
		t.Fatalf("Allow = %q, want GET, POST", allow)
	}
	c.Do(t, "PUT", "/api/v1/agents/x/start", nil).WantError(t, 405, "use POST")
}

func TestBodies(t *testing.T) {
	env := platformtest.Start(t, platformtest.Options{})
	c := env.Client(env.Token(t, "acme"))
	for _, tc := range []struct {
		path, body, want string
		status           int
	}{
		{"/api/v1/scopes", ``, "request body is empty", 400},
		{"/api/v1/scopes", `{"name":`, "not valid JSON", 400},
		{"/api/v1/scopes", `["production"]`, "must be a JSON object", 400},
		{"/api/v1/scopes", `{"name":42}`, `field "name" must be a string`, 400},
		{"/api/v1/scopes", `{"name":"p","color":"red"}`, `unknown field "color"`, 400},
		{"/api/v1/scopes", `{"name":"p"} {"name":"q"}`, "not valid JSON", 400},
		{"/api/v1/scopes", `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, "larger than", 413},
		{"/api/v1/agents", `{"name":"a","initialPrompt":["x"]}`, `field "initialPrompt" must be a string`, 400},
		{"/api/v1/agents", `{"name":"a","image":"x"}`, `unknown field "image"`, 400},
	} {
		c.Do(t, "POST", tc.path, tc.body).WantError(t, tc.status, tc.want)
	}
}
