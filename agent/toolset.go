package agent

import (
	"context"
	"fmt"
	"strconv"

	"github.com/agenthost/agenthost/llm"
)

// Toolset is a source of tools that lives outside the agent and outlives
// it, such as a connection to an MCP server (package agent/mcptools).
// Hosts build a fresh agent per request, so one Toolset serves many agents:
// its Tools should answer from what it already knows after the first call,
// and it bounds its own waits (New passes it no deadline).
type Toolset interface {
	Tools(ctx context.Context) ([]Tool, error)
}

// WithMCP gives the agent the tools of MCP servers, opened with package
// agent/mcptools (mcptools.Command, mcptools.Remote or mcptools.Open), which
// keeps the MCP SDK out of programs that do not use it:
//
//	fs := mcptools.Command("fs", []string{"npx", "-y", "@modelcontextprotocol/server-filesystem", "/data"})
//	defer fs.Close()
//	a, err := agent.New("librarian", agent.WithMCP(fs))
//
// The servers' tools are listed when the agent is built, after every other
// option, so a name taken by one of the agent's own tools (or by an earlier
// server's) gets a suffix ("fs_read_2") instead of failing New. The caller
// owns the servers and closes them; the agent never does.
func WithMCP(servers ...Toolset) Option {
	return func(a *Agent) error {
		for _, s := range servers {
			if s == nil {
				return fmt.Errorf("WithMCP: nil server")
			}
		}
		a.toolsets = append(a.toolsets, servers...)
		return nil
	}
}

// maxToolName is the longest tool name the providers accept (OpenAI's
// ^[a-zA-Z0-9_-]{1,64}$).
const maxToolName = 64

// addToolsets lists the pending toolsets' tools and appends them, renaming
// those whose names are taken.
func (a *Agent) addToolsets() error {
	sets := a.toolsets
	a.toolsets = nil
	if len(sets) == 0 {
		return nil
	}
	taken := make(map[string]bool, len(a.tools))
	for _, t := range a.tools {
		taken[t.Spec().Name] = true
	}
	for _, s := range sets {
		tools, err := s.Tools(context.Background())
		if err != nil {
			return err
		}
		for _, t := range tools {
			name := t.Spec().Name
			if taken[name] {
				name = freeName(name, taken)
				t = &renamedTool{Tool: t, name: name}
			}
			taken[name] = true
			a.tools = append(a.tools, t)
		}
	}
	return nil
}

// freeName returns name with the smallest suffix _2, _3, … that is not
// taken, shortened to fit maxToolName.
func freeName(name string, taken map[string]bool) string {
	for i := 2; ; i++ {
		suffix := "_" + strconv.Itoa(i)
		base := name
		if len(base)+len(suffix) > maxToolName {
			base = base[:maxToolName-len(suffix)]
		}
		if c := base + suffix; !taken[c] {
			return c
		}
	}
}

// renamedTool is a toolset's tool under another name; the toolset still
// sees its own.
type renamedTool struct {
	Tool
	name string
}

func (t *renamedTool) Spec() llm.ToolSpec {
	s := t.Tool.Spec()
	s.Name = t.name
	return s
}
