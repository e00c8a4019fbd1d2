package host_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestOpenAPI(t *testing.T) {
	h := startHost(t, "offline/demo")
	resp, err := http.Get(h.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var spec struct {
		OpenAPI string                           `json:"openapi"`
		Paths   map[string]map[string]any        `json:"paths"`
		Comp    struct{ Schemas map[string]any } `json:"components"`
		WS      struct {
			Client map[string]any `json:"client_to_server"`
			Server map[string]any `json:"server_to_client"`
		} `json:"x-websocket"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&spec); err != nil {
		t.Fatalf("not valid JSON: %v", err)
	}
	if spec.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", spec.OpenAPI)
	}
	for path, method := range map[string]string{"/input": "post", "/sessions": "get", "/sessions/{id}": "get", "/health": "get",
		"/info": "get", "/openapi.json": "get", "/docs": "get", "/ws": "get"} {
		if spec.Paths[path][method] == nil {
			t.Errorf("%s %s missing", method, path)
		}
	}
	for _, f := range []string{"CONNECT", "INPUT", "PONG", "SESSION_STATUS", "INTERRUPT", "APPROVAL_RESPONSE", "ASK_USER_RESPONSE", "ONBOARD_SUBMIT"} {
		if spec.WS.Client[f] == nil {
			t.Errorf("client frame %s missing", f)
		}
	}
	for _, f := range []string{"CONNECTED", "STREAM", "llm_call", "llm_result", "tool_call", "tool_result", "ask_user", "approval_needed",
		"session_sync", "OUTPUT", "ERROR", "PING", "SESSION_STATUS", "ONBOARD_REQUIRED", "ONBOARD_SUCCESS"} {
		if spec.WS.Server[f] == nil {
			t.Errorf("server frame %s missing", f)
		}
	}
	// Every $ref resolves.
	var all any
	resp2, _ := http.Get(h.URL + "/openapi.json")
	json.NewDecoder(resp2.Body).Decode(&all)
	resp2.Body.Close()
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
				var cur any = all
				for _, p := range parts {
					m, _ := cur.(map[string]any)
					cur = m[p]
				}
				if cur == nil {
					t.Errorf("dangling $ref %s", ref)
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(all)
}

func TestDocsPage(t *testing.T) {
	h := startHost(t, "offline/demo")
	for path, want := range map[string]string{"/docs": "<textarea id=\"prompt\"", "/docs/app.js": "new WebSocket", "/docs/style.css": "#messages", "/": "<textarea"} {
		resp, err := http.Get(h.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d, lacks %q", path, resp.StatusCode, want)
		}
	}
	resp, _ := http.Get(h.URL + "/docs/missing.js")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("missing asset: %d", resp.StatusCode)
	}
}
