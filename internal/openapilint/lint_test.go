package openapilint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform/api"
)

// envRedocly names the redocly command (scripts/service-redocly.sh).
const envRedocly = "AGENTHOST_TEST_REDOCLY"

type lintReport struct {
	Totals struct {
		Errors   int `json:"errors"`
		Warnings int `json:"warnings"`
	} `json:"totals"`
	Problems []struct {
		RuleID   string `json:"ruleId"`
		Severity string `json:"severity"`
		Message  string `json:"message"`
		Location []struct {
			Pointer string `json:"pointer"`
		} `json:"location"`
	} `json:"problems"`
}

// TestRedoclyRecommended: both documents pass Redocly's recommended rules
// with no error. Before, the host document had one (no servers) and 38
// warnings (the JSON and SSE answers of POST /input sharing one schema
// story, undeclared required fields of the Agent Card, the WebSocket
// frames unreferenced); real answers of both are validated against them
// in host's TestOpenAPIResponses and the platform's tests.
// accepted are the warnings of Redocly's recommended rules each document
// keeps, with why; any other warning fails the test.
var accepted = map[string]map[string]string{
	"host": {
		"operation-4xx-response #/paths/~1health/get/responses":                       "liveness answers 200 (or a 503 while not serving); no request can be wrong",
		"operation-4xx-response #/paths/~1info/get/responses":                         "takes no input; nothing a caller sends can be refused",
		"operation-4xx-response #/paths/~1openapi.json/get/responses":                 "takes no input; nothing a caller sends can be refused",
		"operation-4xx-response #/paths/~1docs/get/responses":                         "an HTML page that takes no input",
		"operation-4xx-response #/paths/~1.well-known~1agent-card.json/get/responses": "takes no input; nothing a caller sends can be refused",
		"operation-2xx-response #/paths/~1ws/get/responses":                           "a WebSocket upgrade succeeds with 101, which OpenAPI has no 2xx for",
		"no-unused-components #/components/schemas/TraceFields":                       "fields every event carries, documented once for generated clients",
		"no-unused-components #/components/schemas/ClientFrame":                       "the frames a client sends on /ws (named by its x-client-frames), which OpenAPI cannot attach to an operation",
	},
	"platform": {
		"operation-4xx-response #/paths/~1api~1v1~1openapi.json/get/responses": "takes no input and no credential; nothing can be refused",
		"operation-4xx-response #/paths/~1health/get/responses":                "liveness takes no input and no credential",
		"operation-4xx-response #/paths/~1ready/get/responses":                 "readiness takes no input and no credential",
	},
}

func TestRedoclyRecommended(t *testing.T) {
	redocly := os.Getenv(envRedocly)
	if redocly == "" {
		const msg = "no Redocly CLI: set " + envRedocly + " (scripts/service-redocly.sh installs it and prints the variable)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	hostDoc, err := os.ReadFile(filepath.Join("..", "..", "host", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string][]byte{"host": hostDoc, "platform": api.OpenAPI} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), name+".json")
			if err := os.WriteFile(file, doc, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, redocly, "lint", "--extends=recommended", "--format=json", file)
			cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			runErr := cmd.Run() // exits 1 on errors; the report says which
			var r lintReport
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("redocly lint: %v (%v)\n%s\n%s", err, runErr, stdout.Bytes(), stderr.Bytes())
			}
			for _, p := range r.Problems {
				where := ""
				if len(p.Location) > 0 {
					where = p.Location[0].Pointer
				}
				if p.Severity == "error" {
					t.Errorf("%s: %s at %s", p.RuleID, p.Message, where)
				} else if why, ok := accepted[name][p.RuleID+" "+where]; ok {
					t.Logf("%s %s at %s, accepted: %s", p.Severity, p.RuleID, where, why)
				} else {
					t.Errorf("%s %s: %s at %s (fix it, or add it to accepted with the reason)", p.Severity, p.RuleID, p.Message, where)
				}
			}
			if r.Totals.Errors != 0 || runErr != nil {
				t.Fatalf("redocly lint: %d errors, %d warnings (%v)", r.Totals.Errors, r.Totals.Warnings, runErr)
			}
			t.Logf("%d warnings", r.Totals.Warnings)
		})
	}
}
