package agent_test

import (
	"context"
	"testing"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/llm"
)

// BenchmarkTurn measures one user turn with a tool round trip (two model
// calls and one tool call) on the offline model: turns per second and
// allocations per turn of the loop itself.
func BenchmarkTurn(b *testing.B) {
	a, err := agent.New("bench", agent.WithTools(addTool()))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	input := []llm.Message{llm.UserText("use add on 2 and 3")}
	b.ReportAllocs()
	for b.Loop() {
		var conv agent.Conversation
		for range a.Run(ctx, &conv, input) {
		}
	}
}

// BenchmarkTextTurn is a turn without tools: one model call streamed.
func BenchmarkTextTurn(b *testing.B) {
	a, err := agent.New("bench")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	input := []llm.Message{llm.UserText("hello there, my name is Ada")}
	b.ReportAllocs()
	for b.Loop() {
		var conv agent.Conversation
		for range a.Run(ctx, &conv, input) {
		}
	}
}

type schemaArgs struct {
	Path    string   `json:"path" jsonschema:"file to read"`
	Offset  int      `json:"offset,omitempty" jsonschema:"first line"`
	Limit   int      `json:"limit,omitempty" jsonschema:"number of lines"`
	Filters []string `json:"filters,omitempty"`
	Options struct {
		Follow bool `json:"follow"`
	} `json:"options"`
}

// BenchmarkToolSchema measures deriving and resolving a tool's schema.
func BenchmarkToolSchema(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := agent.NewTool("read", "Read a file.", func(context.Context, schemaArgs) (string, error) { return "", nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkToolCall measures validating arguments and calling a typed tool.
func BenchmarkToolCall(b *testing.B) {
	t := addTool()
	args := []byte(`{"a":1.5,"b":2}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Call(ctx, args); err != nil {
			b.Fatal(err)
		}
	}
}
