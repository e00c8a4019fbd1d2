package offline_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/llm"
	"github.com/agenthost/agenthost/llm/offline"
)

var addSpec = llm.ToolSpec{Name: "add", Parameters: json.RawMessage(`{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}`)}
var echoSpec = llm.ToolSpec{Name: "echo", Parameters: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`)}
var bashSpec = llm.ToolSpec{Name: "bash", Parameters: json.RawMessage(`{"type":"object","properties":{"command":{"type":"string"},"timeout":{"type":"integer"}},"required":["command"]}`)}

func gen(t *testing.T, msgs []llm.Message, tools ...llm.ToolSpec) *llm.Response {
	t.Helper()
	m, err := llm.Open("offline/demo")
	if err != nil {
		t.Fatal(err)
	}
	var streamed strings.Builder
	resp, err := m.Generate(context.Background(), &llm.Request{Messages: msgs, Tools: tools}, func(d llm.Delta) { streamed.WriteString(d.Text) })
	if err != nil {
		t.Fatal(err)
	}
	if streamed.String() != resp.Message.Text() {
		t.Fatalf("streamed %q != final %q", streamed.String(), resp.Message.Text())
	}
	return resp
}

func TestToolCallsFromPrompt(t *testing.T) {
	tests := []struct {
		prompt string
		tools  []llm.ToolSpec
		want   []string // name + args
	}{
		{"use add on 2 and 3", []llm.ToolSpec{addSpec}, []string{`add {"a":2,"b":3}`}},
		{"please add 2 and 3", []llm.ToolSpec{addSpec}, nil}, // no trigger word
		{"run bash `ls -la`", []llm.ToolSpec{bashSpec}, []string{`bash {"command":"ls -la"}`}},
		{`call echo {"text":"json args"}`, []llm.ToolSpec{echoSpec}, []string{`echo {"text":"json args"}`}},
		{`use echo "one" then add 4 and 5`, []llm.ToolSpec{addSpec, echoSpec}, []string{`echo {"text":"one"}`, `add {"a":4,"b":5}`}},
		{"use the echo tool to say hello there", []llm.ToolSpec{echoSpec}, []string{`echo {"text":"say hello there"}`}},
		{"use echoes", []llm.ToolSpec{echoSpec}, nil}, // whole words only
		// Tool names inside another tool's JSON arguments are arguments.
		{`use bash {"command": "echo hi | add"}`, []llm.ToolSpec{bashSpec, echoSpec, addSpec}, []string{`bash {"command":"echo hi | add"}`}},
		{`use bash {"command": "echo 1"} then echo "x"`, []llm.ToolSpec{bashSpec, echoSpec}, []string{`bash {"command":"echo 1"}`, `echo {"text":"x"}`}},
		// Numbers inside the command are no timeout.
		{"run bash `sleep 2`", []llm.ToolSpec{bashSpec}, []string{`bash {"command":"sleep 2"}`}},
		{"run bash `sleep 2` with timeout 5000", []llm.ToolSpec{bashSpec}, []string{`bash {"command":"sleep 2","timeout":5000}`}},
	}
	for _, tc := range tests {
		t.Run(tc.prompt, func(t *testing.T) {
			resp := gen(t, []llm.Message{llm.UserText(tc.prompt)}, tc.tools...)
			var got []string
			for _, c := range resp.Message.ToolCalls() {
				got = append(got, c.Name+" "+string(c.Args))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("calls = %q, want %q", got, tc.want)
			}
			if len(tc.want) > 0 && resp.StopReason != "tool_calls" {
				t.Errorf("stop reason %q", resp.StopReason)
			}
		})
	}
}

func TestAnswersFromConversation(t *testing.T) {
	hist := []llm.Message{
		llm.UserText("My name is John"),
		{Role: llm.RoleAssistant, Parts: []llm.Part{llm.TextPart("ok")}},
		llm.UserText("my favourite colour is green."),
		{Role: llm.RoleAssistant, Parts: []llm.Part{llm.TextPart("ok")}},
	}
	tests := []struct{ prompt, want string }{
		{"What is my name?", "Your name is John."},
		{"what's my favorite colour?", "Your favorite colour is green."},
		{"What is my job?", "You haven't told me your job yet."},
		{"Who am I?", "You are John."},
	}
	for _, tc := range tests {
		resp := gen(t, append(append([]llm.Message(nil), hist...), llm.UserText(tc.prompt)))
		if got := resp.Message.Text(); !strings.HasPrefix(got, offline.Prefix) || !strings.Contains(got, tc.want) {
			t.Errorf("%q → %q, want it to contain %q", tc.prompt, got, tc.want)
		}
	}
}

func TestAfterToolResults(t *testing.T) {
	msgs := []llm.Message{
		llm.UserText("use add on 1 and 2"),
		{Role: llm.RoleAssistant, Parts: []llm.Part{{Type: llm.PartToolCall, ToolCall: &llm.ToolCall{ID: "c1", Name: "add", Args: json.RawMessage(`{"a":1,"b":2}`)}}}},
		{Role: llm.RoleTool, Parts: []llm.Part{{Type: llm.PartToolResult, ToolResult: &llm.ToolResult{CallID: "c1", Name: "add", Content: "3"}}}},
	}
	resp := gen(t, msgs, addSpec)
	if len(resp.Message.ToolCalls()) != 0 || !strings.Contains(resp.Message.Text(), "The add tool returned: 3") {
		t.Fatalf("got %+v", resp.Message)
	}
}

func TestDeterministic(t *testing.T) {
	msgs := []llm.Message{llm.UserText("hello, I am Ada"), {Role: llm.RoleAssistant, Parts: []llm.Part{llm.TextPart("hi")}}, llm.UserText("what now?")}
	a, b := gen(t, msgs, echoSpec), gen(t, msgs, echoSpec)
	if a.Message.Text() != b.Message.Text() || a.Usage != b.Usage {
		t.Fatal("two identical requests gave different answers")
	}
}

func TestImagesAcknowledged(t *testing.T) {
	msg := llm.Message{Role: llm.RoleUser, Parts: []llm.Part{llm.TextPart("what is this?"), llm.ImagePart("data:image/png;base64,iVBORw0KGgo=")}}
	if got := gen(t, []llm.Message{msg}).Message.Text(); !strings.Contains(got, "1 image") {
		t.Fatalf("got %q", got)
	}
}

func TestCancelled(t *testing.T) {
	m, _ := llm.Open("offline/slow")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Generate(ctx, &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}, nil); err == nil {
		t.Fatal("cancelled context: no error")
	}
}

func FuzzGenerate(f *testing.F) {
	f.Add("use add on 2 and 3")
	f.Add(`call echo {"text":`)
	f.Add("my name is  is  ")
	f.Add("run bash ``")
	m, _ := llm.Open("offline/demo")
	f.Fuzz(func(t *testing.T, prompt string) {
		resp, err := m.Generate(context.Background(), &llm.Request{Messages: []llm.Message{llm.UserText(prompt)}, Tools: []llm.ToolSpec{addSpec, echoSpec, bashSpec}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.Message.ToolCalls() {
			if !json.Valid(c.Args) {
				t.Fatalf("invalid args %q", c.Args)
			}
		}
	})
}
