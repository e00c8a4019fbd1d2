package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/api"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/platform/store"
)

// TestOpenAPIRoutes: the document loads as OpenAPI 3.1 and passes the
// validator's check against the 3.1 schema; every route registered on the
// platform's root mux and its API mux is in it, except the HTML pages
// htmlRoutes lists with a reason, and every operation in it is registered; every operation has a
// unique operationId and a security requirement (Bearer by default, the
// session capability on session pages, none on the meta routes); it is
// served at /api/v1/openapi.json without a token.
func TestOpenAPIRoutes(t *testing.T) {
	v, err := platformtest.OpenAPIValidator()
	if err != nil {
		t.Fatal(err)
	}
	if ok, errs := v.ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("document: %s: %s", e.Message, e.Reason)
		}
	}
	var doc struct {
		OpenAPI  string                               `json:"openapi"`
		Security []map[string][]string                `json:"security"`
		Paths    map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Fatalf("openapi %q, security %v", doc.OpenAPI, doc.Security)
	}
	env := platformtest.Start(t, platformtest.Options{})
	registered := map[string]bool{}
	seenPages := map[string]bool{}
	for _, p := range env.Server.API().Routes() {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			t.Errorf("route %q has no method", p)
			continue
		}
		if _, page := htmlRoutes[p]; page {
			seenPages[p] = true
			if doc.Paths[path] != nil {
				t.Errorf("route %s is exempt as an HTML page but in the OpenAPI document", p)
			}
			continue
		}
		registered[strings.ToLower(method)+" "+path] = true
		if doc.Paths[path][strings.ToLower(method)] == nil {
			t.Errorf("route %s is not in the OpenAPI document (nor an HTML page listed in htmlRoutes)", p)
		}
	}
	for p := range htmlRoutes {
		if !seenPages[p] {
			t.Errorf("htmlRoutes lists %s, which no route serves", p)
		}
	}
	ids := map[string]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			if !registered[method+" "+path] {
				t.Errorf("the document has %s %s, which no route serves", method, path)
			}
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] != "" {
				t.Errorf("%s %s: operationId %q missing or also on %s", method, path, id, ids[id])
			}
			ids[id] = method + " " + path
			if _, ok := op["responses"].(map[string]any)["default"]; !ok {
				t.Errorf("%s %s: no default (error) response", method, path)
			}
		}
	}
	r := env.Client("").Do(t, "GET", "/api/v1/openapi.json", nil)
	if r.Status != http.StatusOK || string(r.Body) != string(api.OpenAPI) {
		t.Fatalf("GET /api/v1/openapi.json: %d", r.Status)
	}
}

// htmlRoutes are the routes of the platform's root mux that the OpenAPI
// document leaves out, each with why: pages for people and their files,
// no JSON. Every other registered route must be in the document.
var htmlRoutes = map[string]string{
	"GET /{$}":         "the dashboard's HTML page",
	"GET /ui/":         "the dashboard's scripts and styles",
	"GET /a/{agentId}": "the agent's HTML page",
	"GET /ui/agent/":   "the agent page's scripts and styles",
	"GET /ui/kit/":     "the scripts and styles both pages share",
}

// TestReady: /ready is 200 "ready" once the platform serves (platformtest
// waits for its reconciliation), and /health reports the database.
func TestReadyAndHealth(t *testing.T) {
	env := platformtest.Start(t, platformtest.Options{})
	env.WaitReconciled(t)
	if m := env.Client("").Do(t, "GET", "/ready", nil).Want(t, 200); m["status"] != "ready" {
		t.Fatalf("ready = %v", m)
	}
	if m := env.Client("").Do(t, "GET", "/health", nil).Want(t, 200); m["database"] != "ok" {
		t.Fatalf("health = %v", m)
	}
}

// downStore is a database that does not answer.
type downStore struct{ store.Store }

func (downStore) FindAgent(context.Context, string) (store.Agent, error) {
	return store.Agent{}, errors.New("dial tcp 127.0.0.1:5432: connection refused")
}

// TestHealthDatabaseDown: /health is 503 with "database": "unavailable"
// when the database does not answer, so probes take the replica out.
func TestHealthDatabaseDown(t *testing.T) {
	srv := api.New(api.Config{Store: downStore{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	var m map[string]string
	json.Unmarshal(rec.Body.Bytes(), &m)
	if rec.Code != http.StatusServiceUnavailable || m["database"] != "unavailable" || m["status"] != "unavailable" {
		t.Fatalf("health with the database down: %d %v", rec.Code, m)
	}
	ready := api.New(api.Config{Store: downStore{}, Ready: func() string { return "starting" }})
	rec = httptest.NewRecorder()
	ready.ServeHTTP(rec, httptest.NewRequest("GET", "/ready", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"starting"`) {
		t.Fatalf("ready while starting: %d %s", rec.Code, rec.Body)
	}
}
