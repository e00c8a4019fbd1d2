package host_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"

	"github.com/agenthost/agenthost/host"
)

// hostValidator is the host's OpenAPI document as a strict response
// validator: a field an answer has that the document does not declare is
// an error, like a wrong type or an undocumented status.
var hostValidator = sync.OnceValues(func() (validator.Validator, error) { return newHostValidator(config.WithStrictMode()) })

// hostValidatorLoose checks status, types and required fields only: for
// the answers whose fields another specification defines (the A2A Agent
// Card, the OpenAPI document itself).
var hostValidatorLoose = sync.OnceValues(func() (validator.Validator, error) { return newHostValidator() })

func newHostValidator(opts ...config.Option) (validator.Validator, error) {
	doc, err := libopenapi.NewDocument(host.OpenAPIDoc)
	if err != nil {
		return nil, err
	}
	v, errs := validator.NewValidator(doc, opts...)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return v, nil
}

var index = regexp.MustCompile(`\[[0-9]+\]`)

// checkAnswer sends req and validates the answer against the document.
func checkAnswer(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	get := hostValidator
	if req.URL.Path == "/.well-known/agent-card.json" || req.URL.Path == "/openapi.json" {
		get = hostValidatorLoose
	}
	v, err := get()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := v.ValidateHttpResponse(req, resp); !ok {
		// One finding per field, whatever the array index.
		seen := map[string]bool{}
		for _, e := range errs {
			msg := index.ReplaceAllString(e.Message+": "+e.Reason, "[*]")
			for _, se := range e.SchemaValidationErrors {
				msg += "; " + se.Reason + " at " + se.FieldPath
			}
			if !seen[msg] {
				seen[msg] = true
				t.Errorf("%s %s: %d answer does not match the document: %s", req.Method, req.URL.Path, resp.StatusCode, msg)
			}
		}
		if len(seen) > 0 {
			t.Logf("the answer: %.600s", body)
		}
	}
	return resp.StatusCode, body
}

// TestOpenAPIResponses: real answers of every documented route validate
// against the host's document in strict mode (no undocumented field, no
// undocumented status): a run as JSON and as server-sent events, a
// continued session, the session views, errors, the meta routes, and GET
// /ws without an upgrade.
func TestOpenAPIResponses(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithTrust("open"))
	careful := startHost(t, "offline/demo", host.WithTrust("careful"))
	req := func(method, path, body string, hdr ...string) *http.Request {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		r, err := http.NewRequest(method, h.URL+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	code, first := checkAnswer(t, req("POST", "/input", `{"prompt":"hello"}`))
	if code != 200 {
		t.Fatalf("POST /input: %d %s", code, first)
	}
	sid := jsonField(t, first, "session_id")
	for _, c := range []struct {
		name string
		r    *http.Request
		want int
	}{
		{"continue", req("POST", "/input", `{"prompt":"again","session_id":"`+sid+`"}`), 200},
		{"sse", req("POST", "/input", `{"prompt":"streamed"}`, "Accept", "text/event-stream"), 200},
		{"bad json", req("POST", "/input", `{"prompt":`), 400},
		{"no prompt", req("POST", "/input", `{}`), 400},
		{"sessions", req("GET", "/sessions", ""), 200},
		{"session", req("GET", "/sessions/"+sid, ""), 200},
		{"no session", req("GET", "/sessions/nope", ""), 404},
		{"health", req("GET", "/health", ""), 200},
		{"info", req("GET", "/info", ""), 200},
		{"openapi", req("GET", "/openapi.json", ""), 200},
		{"docs", req("GET", "/docs", ""), 200},
		{"ws without upgrade", req("GET", "/ws", ""), 426},
		{"agent card", req("GET", "/.well-known/agent-card.json", ""), 200},
		{"sessions unsigned", must(http.NewRequest("GET", careful.URL+"/sessions", nil)), 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, body := checkAnswer(t, c.r); code != c.want {
				t.Fatalf("%d, want %d: %.300s", code, c.want, body)
			}
		})
	}
}

// jsonField is a string field of a JSON object.
func jsonField(t *testing.T, body []byte, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	s, _ := m[key].(string)
	if s == "" {
		t.Fatalf("no %s in %s", key, body)
	}
	return s
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
