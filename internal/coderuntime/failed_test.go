package coderuntime

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/fakellm"
	"github.com/agenthost/agenthost/internal/testutil"
)

// TestFailedTurnIsVisible: a turn whose model call fails shows in the
// history as an assistant message in error state with the provider's
// message, in the status (lastError) and in the events; the next good
// turn clears lastError, and the model never reads the failure.
func TestFailedTurnIsVisible(t *testing.T) {
	t.Parallel()
	llm := fakellm.NewOpenAI(t)
	llm.Push(fakellm.Reply{Chunks: []string{"Let me ", "look"}, StreamError: "The server had an error while processing your request."})
	rg := newRig(t, func(c *Config) { c.Registry, c.Model = llm.Registry(), "fake/gpt-test" })
	evs := rg.collect(t, "")
	res := rg.send(t, "", "hello")
	st := rg.until(t, evs, "status", `"result":"failed"`)
	if !strings.Contains(string(st.Data), "The server had an error") {
		t.Fatalf("status event: %s", st.Data)
	}
	msg := rg.until(t, evs, "message", `"error":{"message"`)
	if !strings.Contains(string(msg.Data), "The server had an error") || !strings.Contains(string(msg.Data), `"role":"assistant"`) {
		t.Fatalf("message event: %s", msg.Data)
	}
	rg.waitIdle(t)
	h := rg.history(t, res.SessionID)
	if len(h.Messages) != 2 {
		t.Fatalf("history: %+v", h.Messages)
	}
	a := h.Messages[1].Info
	if a.Role != "assistant" || a.Error == nil || !strings.Contains(a.Error.Message, "The server had an error") ||
		len(a.Parts) != 1 || a.Parts[0].Text != "Let me look" {
		t.Fatalf("the failed turn's message: %+v", a)
	}
	status, err := rg.c.RuntimeStatus(context.Background())
	if err != nil || status.LastError == nil || status.LastError.SessionID != res.SessionID ||
		!strings.Contains(status.LastError.Message, "The server had an error") || status.LastError.Time == 0 {
		t.Fatalf("status: %+v %v", status, err)
	}
	code, raw := rg.raw(t, "GET", "/control/status", "")
	if le, _ := raw["lastError"].(map[string]any); code != 200 || le["sessionId"] != res.SessionID {
		t.Fatalf("status JSON: %v", raw)
	}

	llm.Push(fakellm.Reply{Text: "Hello!"})
	rg.send(t, res.SessionID, "again")
	rg.waitIdle(t)
	if reqs := llm.Requests(); len(reqs) != 2 || strings.Contains(string(reqs[1].Raw), "Let me look") {
		t.Fatalf("the model read the failed turn: %+v", reqs)
	}
	if status, _ := rg.c.RuntimeStatus(context.Background()); status.LastError != nil {
		t.Fatalf("lastError after a good turn: %+v", status.LastError)
	}
	if h := rg.history(t, res.SessionID); len(h.Messages) != 4 || h.Messages[3].Info.Error != nil || h.Messages[3].Info.Parts[0].Text != "Hello!" {
		t.Fatalf("history after the good turn: %+v", h.Messages)
	}
}

// TestFailedTurnLogCarriesRequestID: the "turn failed" line a runtime
// writes after answering the message's request carries that request's
// id (the platform passes its own on), so an operator follows one
// message from the platform's access log to its failure in the runtime.
func TestFailedTurnLogCarriesRequestID(t *testing.T) {
	t.Parallel()
	llm := fakellm.NewOpenAI(t)
	llm.Push(fakellm.Reply{Status: http.StatusBadRequest, Error: "this model refuses"})
	var logs testutil.Buffer
	rg := newRig(t, func(c *Config) {
		c.Registry, c.Model = llm.Registry(), "fake/gpt-test"
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	req, _ := http.NewRequest("POST", rg.srv.URL+"/control/messages", strings.NewReader(`{"message": "hello"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "turn-req-2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The line comes after the turn's end is announced.
	if err := logs.WaitFor(ctxT(t), `"msg":"turn failed"`); err != nil {
		t.Fatalf("%v:\n%s", err, logs.String())
	}
	var failed string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"msg":"turn failed"`) {
			failed = l
		}
	}
	if failed == "" || !strings.Contains(failed, `"request_id":"turn-req-2"`) {
		t.Fatalf("want a \"turn failed\" line with the request's id, got:\n%s", logs.String())
	}
}
