package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/llm"
)

type addArgs struct {
	A float64 `json:"a" jsonschema:"first addend"`
	B float64 `json:"b" jsonschema:"second addend"`
}

type echoArgs struct {
	Text  string `json:"text"`
	Times int    `json:"times,omitempty" jsonschema:"how many times"`
}

func addTool() agent.Tool {
	return agent.MustTool("add", "Add two numbers.", func(_ context.Context, a addArgs) (float64, error) { return a.A + a.B, nil })
}

func newAgent(t *testing.T, opts ...agent.Option) *agent.Agent {
	t.Helper()
	a, err := agent.New("test", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// collect runs one prompt and returns every event.
func collect(t *testing.T, ctx context.Context, a *agent.Agent, conv *agent.Conversation, prompt string, opts ...agent.RunOption) []agent.Event {
	t.Helper()
	var evs []agent.Event
	for ev := range a.Run(ctx, conv, []llm.Message{llm.UserText(prompt)}, opts...) {
		evs = append(evs, ev)
	}
	if len(evs) == 0 || evs[len(evs)-1].Type != agent.EventResult {
		t.Fatalf("run did not end with a result event: %v", types(evs))
	}
	return evs
}

func types(evs []agent.Event) []agent.EventType {
	out := make([]agent.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func result(evs []agent.Event) *agent.Result { return evs[len(evs)-1].Result }

func TestToolSchemaDerivation(t *testing.T) {
	tool := agent.MustTool("echo", "Echo text.", func(_ context.Context, a echoArgs) (string, error) { return a.Text, nil })
	var schema struct {
		Type       string `json:"type"`
		Properties map[string]struct {
			Type        string `json:"type"`
			Description string `json:"description"`
		} `json:"properties"`
		Required             []string `json:"required"`
		AdditionalProperties any      `json:"additionalProperties"`
	}
	if err := json.Unmarshal(tool.Spec().Parameters, &schema); err != nil {
		t.Fatal(err)
	}
	if schema.Type != "object" || schema.Properties["text"].Type != "string" || schema.Properties["times"].Type != "integer" {
		t.Errorf("schema = %s", tool.Spec().Parameters)
	}
	if schema.Properties["times"].Description != "how many times" {
		t.Errorf("description from jsonschema tag missing: %s", tool.Spec().Parameters)
	}
	if len(schema.Required) != 1 || schema.Required[0] != "text" {
		t.Errorf("required = %v, want [text]", schema.Required)
	}
	if schema.AdditionalProperties != false {
		t.Errorf("additionalProperties = %v, want false", schema.AdditionalProperties)
	}
}

func TestNewToolRejectsBadTypes(t *testing.T) {
	if _, err := agent.NewTool("x", "", func(context.Context, string) (string, error) { return "", nil }); err == nil {
		t.Error("non-struct argument type accepted")
	}
	type withChan struct{ C chan int }
	if _, err := agent.NewTool("x", "", func(context.Context, withChan) (string, error) { return "", nil }); err == nil {
		t.Error("channel field accepted")
	}
	if _, err := agent.NewTool("two words", "", func(context.Context, echoArgs) (string, error) { return "", nil }); err == nil {
		t.Error("name with a space accepted")
	}
	if _, err := agent.New("x", agent.WithTools(addTool(), addTool())); err == nil {
		t.Error("duplicate tool names accepted")
	}
}

func TestToolCallValidation(t *testing.T) {
	tool := agent.MustTool("echo", "", func(_ context.Context, a echoArgs) (string, error) {
		return strings.Repeat(a.Text, max(a.Times, 1)), nil
	})
	tests := []struct {
		name, args, want string
		wantErr          string
	}{
		{"ok", `{"text":"hi","times":2}`, "hihi", ""},
		{"optional omitted", `{"text":"hi"}`, "hi", ""},
		{"missing required", `{}`, "", "text"},
		{"wrong type", `{"text":5}`, "", "text"},
		{"unknown field", `{"text":"a","extra":1}`, "", "extra"},
		{"not json", `{"text":`, "", "not valid JSON"},
		{"null means empty object", `null`, "", "text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tool.Call(context.Background(), json.RawMessage(tc.args))
			if tc.wantErr != "" {
				var ae *agent.ArgumentError
				if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ArgumentError mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestToolRoundTripEvents(t *testing.T) {
	a := newAgent(t, agent.WithTools(addTool()))
	var conv agent.Conversation
	evs := collect(t, context.Background(), a, &conv, "use add on 2 and 3")
	res := result(evs)
	if res.Status != agent.StatusCompleted || !strings.Contains(res.Text, "The add tool returned: 5") {
		t.Fatalf("result = %+v", res)
	}
	if res.Iterations != 2 {
		t.Errorf("iterations = %d, want 2", res.Iterations)
	}
	// The order of the observable steps.
	var steps []agent.EventType
	for _, e := range evs {
		if e.Type != agent.EventText && e.Type != agent.EventMessage {
			steps = append(steps, e.Type)
		}
	}
	want := []agent.EventType{agent.EventLLMCall, agent.EventLLMResult, agent.EventToolCall, agent.EventToolResult,
		agent.EventLLMCall, agent.EventLLMResult, agent.EventResult}
	if !equal(steps, want) {
		t.Fatalf("steps = %v\nwant   %v", steps, want)
	}
	for _, e := range evs {
		if e.Type == agent.EventToolResult {
			if e.ToolResult.Status != agent.ToolCompleted || e.ToolResult.Output != "5" || e.ToolCall.Name != "add" {
				t.Errorf("tool result = %+v", e.ToolResult)
			}
		}
	}
	// user, assistant(tool call), tool, assistant(text)
	roles := []llm.Role{llm.RoleUser, llm.RoleAssistant, llm.RoleTool, llm.RoleAssistant}
	if len(conv.Messages) != len(roles) {
		t.Fatalf("conversation has %d messages, want %d", len(conv.Messages), len(roles))
	}
	for i, r := range roles {
		if conv.Messages[i].Role != r || conv.Messages[i].ID == "" {
			t.Errorf("message %d: role %s id %q, want role %s and an id", i, conv.Messages[i].Role, conv.Messages[i].ID, r)
		}
	}
	// Streamed text concatenates to the final answer.
	var streamed strings.Builder
	for _, e := range evs {
		if e.Type == agent.EventText {
			streamed.WriteString(e.Text)
		}
	}
	if streamed.String() != res.Text {
		t.Errorf("streamed %q, final %q", streamed.String(), res.Text)
	}
}

func TestUsageAccumulates(t *testing.T) {
	a := newAgent(t, agent.WithTools(addTool()))
	var conv agent.Conversation
	res := result(collect(t, context.Background(), a, &conv, "use add on 1 and 1"))
	var sum llm.Usage
	for _, m := range conv.Messages {
		if m.Role == llm.RoleAssistant {
			if m.Usage == nil || m.Created == 0 || m.Completed < m.Created || m.Model != "offline/demo" {
				t.Fatalf("assistant message lacks accounting: %+v", m)
			}
			sum.Add(*m.Usage)
		}
	}
	if sum != res.Usage || sum.Input == 0 || sum.Output == 0 {
		t.Fatalf("run usage %+v, sum of messages %+v", res.Usage, sum)
	}
}

func TestCostFromPriceTable(t *testing.T) {
	reg := llm.NewRegistry()
	reg.SetPrice("offline/demo", llm.Price{Input: 1e6, Output: 2e6}) // $1 per input token, $2 per output token
	a := newAgent(t, agent.WithRegistry(reg))
	var conv agent.Conversation
	res := result(collect(t, context.Background(), a, &conv, "hello"))
	want := float64(res.Usage.Input) + 2*float64(res.Usage.Output)
	if res.Cost != want || conv.Messages[1].Cost != want {
		t.Fatalf("cost = %v (message %v), want %v", res.Cost, conv.Messages[1].Cost, want)
	}
}

func TestMultiTurnMemory(t *testing.T) {
	a := newAgent(t)
	var conv agent.Conversation
	collect(t, context.Background(), a, &conv, "My name is John")
	// The conversation survives a JSON round trip, as hosts store it.
	b, err := json.Marshal(conv)
	if err != nil {
		t.Fatal(err)
	}
	var restored agent.Conversation
	if err := json.Unmarshal(b, &restored); err != nil {
		t.Fatal(err)
	}
	res := result(collect(t, context.Background(), a, &restored, "What is my name?"))
	if !strings.Contains(res.Text, "Your name is John") {
		t.Fatalf("answer %q does not remember the name", res.Text)
	}
}

func TestToolPanicAndErrorAreToolResults(t *testing.T) {
	boom := agent.MustTool("boom", "Panics.", func(context.Context, echoArgs) (string, error) { panic("kaboom") })
	fail := agent.MustTool("fail", "Fails.", func(context.Context, echoArgs) (string, error) { return "", errors.New("disk full") })
	a := newAgent(t, agent.WithTools(boom, fail))
	var conv agent.Conversation
	evs := collect(t, context.Background(), a, &conv, `use boom {"text":"x"} then fail {"text":"y"}`)
	res := result(evs)
	if res.Status != agent.StatusCompleted {
		t.Fatalf("a failing tool must not end the run: %+v", res)
	}
	got := map[string]*agent.ToolOutcome{}
	for _, e := range evs {
		if e.Type == agent.EventToolResult {
			got[e.ToolResult.Name] = e.ToolResult
		}
	}
	var pe *agent.PanicError
	if o := got["boom"]; o == nil || o.Status != agent.ToolFailed || !errors.As(o.Err, &pe) {
		t.Errorf("boom outcome = %+v", o)
	}
	if o := got["fail"]; o == nil || o.Status != agent.ToolFailed || !strings.Contains(o.Err.Error(), "disk full") {
		t.Errorf("fail outcome = %+v", o)
	}
	if !strings.Contains(res.Text, "The boom tool failed") || !strings.Contains(res.Text, "disk full") {
		t.Errorf("the model did not see the failures: %q", res.Text)
	}
}

func TestBadArgumentsReachTheModel(t *testing.T) {
	a := newAgent(t, agent.WithTools(addTool()))
	var conv agent.Conversation
	res := result(collect(t, context.Background(), a, &conv, `use add {"a":"two","b":3}`))
	if res.Status != agent.StatusCompleted || !strings.Contains(res.Text, "invalid arguments for tool add") {
		t.Fatalf("result = %+v", res)
	}
}

func TestMaxIterations(t *testing.T) {
	a := newAgent(t, agent.WithTools(addTool()), agent.WithMaxIterations(1))
	var conv agent.Conversation
	res := result(collect(t, context.Background(), a, &conv, "use add on 1 and 2"))
	if res.Status != agent.StatusMaxIterations || res.Iterations != 1 {
		t.Fatalf("result = %+v", res)
	}
	if _, err := agent.New("x", agent.WithMaxIterations(0)); err == nil {
		t.Error("max iterations 0 accepted")
	}
	if newAgent(t).MaxIterations() != agent.DefaultMaxIterations {
		t.Error("default max iterations")
	}
}

func TestCancelStopsStreamPromptly(t *testing.T) {
	a := newAgent(t, agent.WithModel("offline/slow"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conv agent.Conversation
	start := time.Now()
	var res *agent.Result
	chunks := 0
	for ev := range a.Run(ctx, &conv, []llm.Message{llm.UserText("tell me a long story about many things")}) {
		switch ev.Type {
		case agent.EventText:
			chunks++
			if chunks == 2 {
				cancel()
			}
		case agent.EventResult:
			res = ev.Result
		}
	}
	if res.Status != agent.StatusAborted || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("result = %+v", res)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("cancel took %s", time.Since(start))
	}
	// The partial answer is kept so the history shows what was said.
	last := conv.Messages[len(conv.Messages)-1]
	if last.Role != llm.RoleAssistant || last.Text() == "" || last.Text() != res.Text {
		t.Fatalf("partial message = %+v, result text %q", last, res.Text)
	}
}

func TestCancelStopsRunningTool(t *testing.T) {
	started := make(chan struct{})
	wait := agent.MustTool("wait", "Waits until cancelled.", func(ctx context.Context, _ echoArgs) (string, error) {
		close(started)
		<-ctx.Done()
		return "", ctx.Err()
	})
	a := newAgent(t, agent.WithTools(wait))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	var conv agent.Conversation
	res := result(collect(t, ctx, a, &conv, `use wait {"text":"x"}`))
	if res.Status != agent.StatusAborted {
		t.Fatalf("result = %+v", res)
	}
	// Every tool call has a result, so the conversation stays valid for
	// providers when it is resumed.
	last := conv.Messages[len(conv.Messages)-1]
	if last.Role != llm.RoleTool || len(last.Parts) != 1 || !last.Parts[0].ToolResult.IsError {
		t.Fatalf("last message = %+v", last)
	}
}

func TestBreakingTheLoopCancels(t *testing.T) {
	var cancelled atomic.Bool
	wait := agent.MustTool("wait", "", func(ctx context.Context, _ echoArgs) (string, error) {
		<-ctx.Done()
		cancelled.Store(true)
		return "", ctx.Err()
	})
	quick := agent.MustTool("quick", "", func(context.Context, echoArgs) (string, error) { return "ok", nil })
	a := newAgent(t, agent.WithTools(wait, quick))
	var conv agent.Conversation
	start := time.Now()
	for ev := range a.Run(context.Background(), &conv, []llm.Message{llm.UserText(`use wait {"text":"x"} and quick {"text":"y"}`)}) {
		// The quick tool finishes while wait is still running.
		if ev.Type == agent.EventToolResult && ev.ToolResult.Name == "quick" {
			break
		}
	}
	if !cancelled.Load() {
		t.Fatal("the running tool was not cancelled when the consumer stopped")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stopping took %s", d)
	}

	// Stopping mid-stream ends the model call too.
	slow := newAgent(t, agent.WithModel("offline/slow"))
	start = time.Now()
	for ev := range slow.Run(context.Background(), &agent.Conversation{}, []llm.Message{llm.UserText("a long story please, with many many words in it")}) {
		if ev.Type == agent.EventText {
			break
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stopping the stream took %s", d)
	}
}

func TestApprover(t *testing.T) {
	tests := []struct {
		name       string
		decision   agent.Decision
		wantStatus agent.Status
		wantText   string
		wantRan    bool
	}{
		{"allow", agent.Decision{Allow: true}, agent.StatusCompleted, "returned: 3", true},
		{"reject with feedback", agent.Decision{Feedback: "use subtraction"}, agent.StatusCompleted, "use subtraction", false},
		{"reject ends turn", agent.Decision{}, agent.StatusRejected, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ran atomic.Bool
			add := agent.MustTool("add", "", func(_ context.Context, a addArgs) (float64, error) { ran.Store(true); return a.A + a.B, nil })
			a := newAgent(t, agent.WithTools(add))
			var asked []llm.ToolCall
			approve := func(_ context.Context, c llm.ToolCall) (agent.Decision, error) {
				asked = append(asked, c)
				return tc.decision, nil
			}
			var conv agent.Conversation
			res := result(collect(t, context.Background(), a, &conv, "use add on 1 and 2", agent.WithApprover(approve)))
			if len(asked) != 1 || asked[0].Name != "add" {
				t.Fatalf("approver saw %v", asked)
			}
			if res.Status != tc.wantStatus || !strings.Contains(res.Text, tc.wantText) || ran.Load() != tc.wantRan {
				t.Fatalf("result %+v ran=%v", res, ran.Load())
			}
		})
	}
}

func TestAskUser(t *testing.T) {
	type qArgs struct {
		Question string `json:"question"`
	}
	ask := agent.MustTool("ask", "Ask the user.", func(ctx context.Context, a qArgs) (string, error) {
		ans, err := agent.AskUser(ctx, agent.Question{Question: a.Question, Options: []agent.AnswerOption{{Label: "red"}, {Label: "blue"}}})
		if err != nil {
			return "", err
		}
		return strings.Join(ans[0], ","), nil
	})
	a := newAgent(t, agent.WithTools(ask))
	var conv agent.Conversation
	asker := func(_ context.Context, qs []agent.Question) ([][]string, error) {
		if qs[0].Question != "favourite colour?" {
			t.Errorf("question = %+v", qs[0])
		}
		return [][]string{{"blue"}}, nil
	}
	res := result(collect(t, context.Background(), a, &conv, `use ask "favourite colour?"`, agent.WithAsker(asker)))
	if !strings.Contains(res.Text, "returned: blue") {
		t.Fatalf("result = %q", res.Text)
	}
	// Without a person, the tool gets ErrNoPerson.
	res = result(collect(t, context.Background(), a, &agent.Conversation{}, `use ask "x?"`))
	if !strings.Contains(res.Text, agent.ErrNoPerson.Error()) {
		t.Fatalf("result = %q", res.Text)
	}
}

func TestParallelToolCalls(t *testing.T) {
	// Both tools must be running at once for either to finish.
	both := make(chan struct{}, 2)
	mk := func(name string) agent.Tool {
		return agent.MustTool(name, "", func(ctx context.Context, _ echoArgs) (string, error) {
			both <- struct{}{}
			for len(both) < 2 {
				select {
				case <-ctx.Done():
					return "", ctx.Err()
				case <-time.After(time.Millisecond):
				}
			}
			return name + " done", nil
		})
	}
	a := newAgent(t, agent.WithTools(mk("left"), mk("right")))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var conv agent.Conversation
	res := result(collect(t, ctx, a, &conv, `use left {"text":"a"} and right {"text":"b"}`))
	if res.Status != agent.StatusCompleted || !strings.Contains(res.Text, "left done") || !strings.Contains(res.Text, "right done") {
		t.Fatalf("result = %+v", res)
	}
}

func TestUnknownModel(t *testing.T) {
	for _, name := range []string{"nope", "nosuch/model", "offline/gpt"} {
		if _, err := agent.New("x", agent.WithModel(name)); !errors.Is(err, llm.ErrUnknownModel) {
			t.Errorf("%s: err = %v, want ErrUnknownModel", name, err)
		}
	}
	reg := llm.NewRegistry()
	reg.Getenv = func(string) string { return "" }
	// This test binary imports agent and not llm/openai: the provider is
	// known but not linked, and New says which import is missing.
	_, err := agent.New("x", agent.WithModel("openai/gpt-4o"), agent.WithRegistry(reg))
	if !errors.Is(err, llm.ErrProviderNotLinked) || !strings.Contains(err.Error(), `import _ "github.com/agenthost/agenthost/llm/openai"`) {
		t.Errorf("err = %v, want ErrProviderNotLinked naming llm/openai", err)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDerive(t *testing.T) {
	a := newAgent(t, agent.WithSystemPrompt("one"), agent.WithTools(addTool()))
	b, err := a.Derive(agent.WithSystemPrompt("two"), agent.WithModel("offline/slow"))
	if err != nil {
		t.Fatal(err)
	}
	if a.SystemPrompt() != "one" || a.Model().Name() != "offline/demo" {
		t.Fatalf("original changed: %q %s", a.SystemPrompt(), a.Model().Name())
	}
	if b.SystemPrompt() != "two" || b.Model().Name() != "offline/slow" || len(b.Tools()) != 1 || b.Name() != a.Name() {
		t.Fatalf("derived: %q %s %v", b.SystemPrompt(), b.Model().Name(), b.ToolNames())
	}
	if _, err := a.Derive(agent.WithModel("nope/x")); err == nil {
		t.Fatal("unknown model accepted")
	}
	if _, err := a.Derive(agent.WithTools(addTool())); err == nil {
		t.Fatal("duplicate tool accepted")
	}
}
