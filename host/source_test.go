package host_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
)

// A host serves a built agent as it serves a factory: the agent is the
// template of every request, and each session keeps its own conversation.
func TestServeBuiltAgent(t *testing.T) {
	a, err := agent.New("template", agent.WithModel("offline/demo"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, err := host.New(context.Background(), a, host.WithDir(dir), host.WithCoDir(dir+"/.co"), host.WithLogger(quietLogger()), host.WithTrust("open"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { s.Shutdown(context.Background()); ts.Close() })
	h := &testHost{Server: s, URL: ts.URL}
	_, m := post(t, h, map[string]any{"prompt": "My name is John"})
	john := m["session"]
	_, m = post(t, h, map[string]any{"prompt": "My name is Ada"})
	ada := m["session"]
	_, m = post(t, h, map[string]any{"prompt": "What is my name?", "session": john})
	if r, _ := m["result"].(string); !strings.Contains(r, "John") {
		t.Fatalf("session 1 answered %q", r)
	}
	_, m = post(t, h, map[string]any{"prompt": "What is my name?", "session": ada})
	if r, _ := m["result"].(string); !strings.Contains(r, "Ada") {
		t.Fatalf("session 2 answered %q", r)
	}

	var none *agent.Agent
	if _, err := host.New(context.Background(), none, host.WithDir(dir)); err == nil {
		t.Fatal("a nil agent was accepted")
	}
	type myFactory func() (*agent.Agent, error)
	var f myFactory = func() (*agent.Agent, error) { return agent.New("named") }
	dir2 := t.TempDir()
	s2, err := host.New(context.Background(), f, host.WithDir(dir2), host.WithCoDir(dir2+"/.co"), host.WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("a named factory type: %v", err)
	}
	s2.Shutdown(context.Background())
}
