package platform_test

import (
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/fakellm"
)

// TestFailedTurnIsVisible: an agent whose model call fails shows the
// failure everywhere a user looks — the history (an assistant message in
// error state with the provider's message), GET /api/v1/agents/{id}
// (lastError), and the events (message and status). Before this test the
// history held only the user's message and the error reached nothing but
// the status event's undocumented error field.
func TestFailedTurnIsVisible(t *testing.T) {
	llm := fakellm.NewOpenAI(t)
	llm.Handle(func(fakellm.Request) fakellm.Reply {
		return fakellm.Reply{Status: 401, Error: "Incorrect API key provided: sk-test. You can find your API key at platform.openai.com."}
	})
	r := newCodingRig(t, false, nil)
	c := r.client("acme")
	c.Do(t, "PUT", "/api/v1/secrets", map[string]any{"key": "OPENAI_API_KEY", "value": "sk-test"}).Want(t, 201)
	c.Do(t, "PUT", "/api/v1/secrets", map[string]any{"key": "OPENAI_BASE_URL", "value": llm.URL()}).Want(t, 201)
	id, _ := c.create(map[string]any{"name": "broken", "model": "openai/gpt-4o-mini"})
	events := openEvents(t, r.env.URL+"/api/v1/agents/"+id+"/events", map[string]string{"Authorization": "Bearer " + c.Token})
	sid := c.post("/api/v1/agents/"+id+"/messages", map[string]any{"message": "hello"})["sessionId"].(string)

	msg := next(t, events, "the failed message", func(ev sseEvent) bool {
		m, _ := ev.Data["message"].(map[string]any)
		info, _ := m["info"].(map[string]any)
		return ev.Type == "message" && info["error"] != nil
	})
	info := msg.Data["message"].(map[string]any)["info"].(map[string]any)
	if info["role"] != "assistant" || !strings.Contains(info["error"].(map[string]any)["message"].(string), "Incorrect API key provided") {
		t.Fatalf("message event: %v", msg.Data)
	}
	st := next(t, events, "the status", func(ev sseEvent) bool { return ev.Type == "status" && ev.Data["busy"] == false })
	if st.Data["result"] != "failed" || !strings.Contains(st.Data["error"].(string), "Incorrect API key provided") {
		t.Fatalf("status event: %v", st.Data)
	}

	got := c.waitIdle(id)
	le, _ := got["lastError"].(map[string]any)
	if le == nil || le["sessionId"] != sid || !strings.Contains(le["message"].(string), "Incorrect API key provided") || le["at"] == "" {
		t.Fatalf("GET agent: %v", got)
	}
	h := c.history(id, sid)
	if len(h) != 2 || role(h[1]) != "assistant" {
		t.Fatalf("history: %v", h)
	}
	e, _ := h[1]["info"].(map[string]any)["error"].(map[string]any)
	if e == nil || !strings.Contains(e["message"].(string), "Incorrect API key provided") {
		t.Fatalf("the history's failed message: %v", h[1])
	}
	// An agent that never failed has lastError null.
	ok, _ := c.create(map[string]any{"name": "fine"})
	if got := c.waitIdle(ok); got["lastError"] != nil {
		t.Fatalf("lastError of a healthy agent: %v", got["lastError"])
	}
}
