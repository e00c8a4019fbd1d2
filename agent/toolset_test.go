package agent_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/agent"
)

// toolset is a fixed Toolset (the MCP one is tested in agent/mcptools).
type toolset struct {
	tools []agent.Tool
	err   error
	calls int
}

func (s *toolset) Tools(context.Context) ([]agent.Tool, error) {
	s.calls++
	return s.tools, s.err
}

func echoTool(name, prefix string) agent.Tool {
	return agent.MustTool(name, "", func(_ context.Context, a echoArgs) (string, error) { return prefix + a.Text, nil })
}

// TestWithMCPNames: toolset tools come after the agent's own, whatever
// the option order, and a taken name gets the first free suffix, within
// the 64 characters providers accept.
func TestWithMCPNames(t *testing.T) {
	long := strings.Repeat("n", 64)
	ts := &toolset{tools: []agent.Tool{echoTool("add", "mcp "), echoTool("echo", "mcp "), echoTool("add_2", "mcp2 "), echoTool(long, "")}}
	other := &toolset{tools: []agent.Tool{echoTool(long, "")}}
	a, err := agent.New("a", agent.WithMCP(ts, other), agent.WithTools(addTool()))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(a.ToolNames(), ",")
	want := "add,add_2,echo,add_2_2," + long + "," + long[:62] + "_2"
	if got != want {
		t.Fatalf("names %s\nwant  %s", got, want)
	}
	d, err := a.Derive(agent.WithSystemPrompt("x"))
	if err != nil || strings.Join(d.ToolNames(), ",") != want || ts.calls != 1 {
		t.Fatalf("derive: %v %v, listed %d times", d.ToolNames(), err, ts.calls)
	}
	out, err := a.Tools()[1].Call(context.Background(), []byte(`{"text":"hi"}`))
	if err != nil || out != "mcp hi" || a.Tools()[1].Spec().Name != "add_2" {
		t.Fatalf("renamed tool: %q %v", out, err)
	}
	// Derive lists the toolsets it is given.
	d, err = agent.New("b", agent.WithTools(addTool()))
	if err != nil {
		t.Fatal(err)
	}
	if d, err = d.Derive(agent.WithMCP(&toolset{tools: []agent.Tool{echoTool("add", "")}})); err != nil || strings.Join(d.ToolNames(), ",") != "add,add_2" {
		t.Fatalf("derive with MCP: %v %v", d, err)
	}
}

func TestWithMCPErrors(t *testing.T) {
	boom := errors.New("server down")
	if _, err := agent.New("a", agent.WithMCP(&toolset{err: boom})); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if _, err := agent.New("a", agent.WithMCP(nil)); err == nil {
		t.Fatal("nil toolset accepted")
	}
}
