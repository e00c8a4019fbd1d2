package host_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// TestOpenAPILint holds the host document to the Redocly findings it had:
// every operation has a unique operationId, security schemes are declared
// (the signature headers) and every operation has a security requirement,
// and GET /ws answers a plain GET with the 426 the document lists.
func TestOpenAPILint(t *testing.T) {
	h := startHost(t, "offline/demo")
	resp, err := http.Get(h.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Security   []map[string][]string `json:"security"`
		Components struct {
			SecuritySchemes map[string]any `json:"securitySchemes"`
		} `json:"components"`
		Paths map[string]map[string]struct {
			OperationID string                     `json:"operationId"`
			Security    []map[string][]string      `json:"security"`
			Responses   map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if doc.Components.SecuritySchemes["signature"] == nil || len(doc.Security) == 0 {
		t.Fatalf("security schemes %v, security %v", doc.Components.SecuritySchemes, doc.Security)
	}
	seen := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if op.OperationID == "" || seen[op.OperationID] {
				t.Errorf("%s %s: operationId %q missing or repeated", method, path, op.OperationID)
			}
			seen[op.OperationID] = true
			for _, req := range op.Security {
				for name := range req {
					if doc.Components.SecuritySchemes[name] == nil {
						t.Errorf("%s %s: undeclared security scheme %q", method, path, name)
					}
				}
			}
		}
	}
	if doc.Paths["/ws"]["get"].Responses["426"] == nil {
		t.Fatal("GET /ws: 426 not documented")
	}
	plain, err := http.Get(h.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, plain.Body)
	plain.Body.Close()
	if plain.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("GET /ws without upgrade: %d, want 426 as documented", plain.StatusCode)
	}
}
