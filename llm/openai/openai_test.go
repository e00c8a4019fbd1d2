package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/fakellm"
	"github.com/agenthost/agenthost/llm"
	"github.com/agenthost/agenthost/llm/openai"
)

// newModel returns a model talking to srv as provider "openai".
func newModel(t *testing.T, srv *fakellm.Server, mod func(*openai.Config)) *openai.Model {
	t.Helper()
	cfg := openai.Config{Model: "gpt-4o-mini", BaseURL: srv.URL(), APIKey: "test-key"}
	if mod != nil {
		mod(&cfg)
	}
	m, err := openai.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func generate(t *testing.T, m llm.Model, req *llm.Request) (*llm.Response, []llm.Delta, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var deltas []llm.Delta
	resp, err := m.Generate(ctx, req, func(d llm.Delta) { deltas = append(deltas, d) })
	return resp, deltas, err
}

func userReq(text string) *llm.Request {
	return &llm.Request{Messages: []llm.Message{llm.UserText(text)}}
}

func TestStreamingText(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		stop   string
		want   string
	}{
		{"one chunk", []string{"Hello"}, "", "stop"},
		{"several chunks", []string{"He", "llo", ", ", "world"}, "", "stop"},
		{"unicode split", []string{"h\u00e9", "llo \u4e16", "\u754c"}, "", "stop"},
		{"cut at length", []string{"trunc"}, "length", "length"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakellm.NewOpenAI(t)
			srv.Push(fakellm.Reply{Chunks: tc.chunks, StopReason: tc.stop, Usage: fakellm.Usage{Input: 12, Output: 4}})
			m := newModel(t, srv, nil)
			resp, deltas, err := generate(t, m, &llm.Request{System: "be brief", Messages: []llm.Message{llm.UserText("hi")}, MaxTokens: 50})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range deltas {
				got = append(got, d.Text)
			}
			if strings.Join(got, "|") != strings.Join(tc.chunks, "|") {
				t.Errorf("deltas = %q, want %q", got, tc.chunks)
			}
			if resp.Message.Text() != strings.Join(tc.chunks, "") || resp.StopReason != tc.want {
				t.Errorf("response = %+v", resp)
			}
			if resp.Usage != (llm.Usage{Input: 12, Output: 4}) {
				t.Errorf("usage = %+v", resp.Usage)
			}
			req := srv.Requests()[0]
			if !req.Stream() || req.Model() != "gpt-4o-mini" || req.System() != "be brief" || req.LastUserText() != "hi" {
				t.Errorf("request = %s", req.Raw)
			}
			if opts, _ := req.Body["stream_options"].(map[string]any); opts["include_usage"] != true {
				t.Errorf("stream_options = %v", req.Body["stream_options"])
			}
			if req.Body["max_completion_tokens"] != 50.0 || req.Body["max_tokens"] != nil {
				t.Errorf("max tokens fields: %s", req.Raw)
			}
			if got := req.Header.Get("Authorization"); got != "Bearer test-key" {
				t.Errorf("Authorization = %q", got)
			}
		})
	}
}

type weatherArgs struct {
	City string `json:"city" jsonschema:"the city"`
}

// A tool round trip split over chunks, driven by the real agent loop with
// the model resolved by name through a registry pointing at the server.
func TestToolRoundTripThroughAgent(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	srv.Push(
		fakellm.Reply{
			Chunks:    []string{"Let me check."},
			ToolCalls: []fakellm.ToolCall{{ID: "call_w", NameChunks: []string{"get_", "wea", "ther"}, ArgChunks: []string{`{"ci`, `ty": "Pa`, `ris"}`}}},
			Usage:     fakellm.Usage{Input: 100, Output: 20, CacheRead: 50},
		},
		fakellm.Reply{Chunks: []string{"It is ", "sunny in Paris."}, Usage: fakellm.Usage{Input: 150, Output: 10}},
	)
	reg := llm.NewRegistry()
	reg.Getenv = func(string) string { return "" }
	reg.SetProvider("fake", llm.ProviderConfig{Kind: "openai", BaseURL: srv.URL(), KeyOptional: true})
	reg.SetPrice("fake/m1", llm.Price{Input: 1, Output: 2, CacheRead: 0.5})

	var mu sync.Mutex
	var cities []string
	tool := agent.MustTool("get_weather", "Weather in a city.", func(_ context.Context, a weatherArgs) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		cities = append(cities, a.City)
		return "sunny", nil
	})
	a, err := agent.New("w", agent.WithRegistry(reg), agent.WithModel("fake/m1"), agent.WithTools(tool), agent.WithSystemPrompt("sys"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conv agent.Conversation
	var res *agent.Result
	var text strings.Builder
	for ev := range a.Run(ctx, &conv, []llm.Message{llm.UserText("weather in Paris?")}) {
		switch ev.Type {
		case agent.EventText:
			text.WriteString(ev.Text)
		case agent.EventResult:
			res = ev.Result
		}
	}
	if res == nil || res.Status != agent.StatusCompleted || res.Text != "It is sunny in Paris." {
		t.Fatalf("result = %+v", res)
	}
	if text.String() != "Let me check.It is sunny in Paris." {
		t.Errorf("streamed text = %q", text.String())
	}
	if len(cities) != 1 || cities[0] != "Paris" {
		t.Errorf("tool calls = %v", cities)
	}
	wantUsage := llm.Usage{Input: 250, Output: 30, CacheRead: 50}
	if res.Usage != wantUsage {
		t.Errorf("usage = %+v, want %+v", res.Usage, wantUsage)
	}
	if want := (250*1 + 30*2 + 50*0.5) / 1e6; !near(res.Cost, want) {
		t.Errorf("cost = %v, want %v", res.Cost, want)
	}

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	tools, _ := reqs[0].Body["tools"].([]any)
	if len(tools) != 1 || !strings.Contains(string(reqs[0].Raw), `"name":"get_weather"`) || !strings.Contains(string(reqs[0].Raw), `"city"`) {
		t.Errorf("tools sent: %s", reqs[0].Raw)
	}
	msgs := reqs[1].Messages()
	if len(msgs) != 4 {
		t.Fatalf("second request messages: %s", reqs[1].Raw)
	}
	if msgs[0]["role"] != "system" || msgs[1]["role"] != "user" {
		t.Errorf("messages = %v", msgs)
	}
	asst := msgs[2]
	calls, _ := asst["tool_calls"].([]any)
	if asst["role"] != "assistant" || asst["content"] != "Let me check." || len(calls) != 1 {
		t.Fatalf("assistant message = %v", asst)
	}
	call := calls[0].(map[string]any)
	fn := call["function"].(map[string]any)
	if call["id"] != "call_w" || call["type"] != "function" || fn["name"] != "get_weather" || fn["arguments"] != `{"city": "Paris"}` {
		t.Errorf("tool call sent back = %v", call)
	}
	if tm := msgs[3]; tm["role"] != "tool" || tm["tool_call_id"] != "call_w" || tm["content"] != "sunny" {
		t.Errorf("tool message = %v", tm)
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-12 && d > -1e-12 }

func TestParallelToolCalls(t *testing.T) {
	tests := []struct {
		name       string
		interleave bool
	}{{"sequential", false}, {"interleaved", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakellm.NewOpenAI(t)
			srv.Push(fakellm.Reply{Interleave: tc.interleave, ToolCalls: []fakellm.ToolCall{
				{ID: "a", Name: "left", ArgChunks: []string{`{"text"`, `:"x"}`}},
				{ID: "b", Name: "right", ArgChunks: []string{`{"te`, `xt":`, `"y"}`}},
				{ID: "c", Name: "noargs", ArgChunks: []string{""}},
			}})
			resp, _, err := generate(t, newModel(t, srv, nil), userReq("go"))
			if err != nil {
				t.Fatal(err)
			}
			calls := resp.Message.ToolCalls()
			want := []llm.ToolCall{
				{ID: "a", Name: "left", Args: json.RawMessage(`{"text":"x"}`)},
				{ID: "b", Name: "right", Args: json.RawMessage(`{"text":"y"}`)},
				{ID: "c", Name: "noargs", Args: json.RawMessage(`{}`)},
			}
			if len(calls) != len(want) {
				t.Fatalf("calls = %+v", calls)
			}
			for i := range want {
				if calls[i].ID != want[i].ID || calls[i].Name != want[i].Name || string(calls[i].Args) != string(want[i].Args) {
					t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
				}
			}
			if resp.StopReason != "tool_calls" {
				t.Errorf("stop = %q", resp.StopReason)
			}
		})
	}
}

// Usage through the registry: env-configured base URL and key, cached and
// reasoning tokens, and the price table.
func TestUsageAndCost(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	srv.Push(fakellm.Reply{Reasoning: []string{"hmm, ", "let me think"}, Text: "42",
		Usage: fakellm.Usage{Input: 1000, CacheRead: 4000, Output: 300, Reasoning: 200}})
	reg := llm.NewRegistry()
	reg.Getenv = mapEnv(map[string]string{"OPENAI_BASE_URL": srv.URL(), "OPENAI_API_KEY": "sk-env"})
	m, err := reg.Open("openai/gpt-4o-mini")
	if err != nil {
		t.Fatal(err)
	}
	resp, deltas, err := generate(t, m, userReq("question"))
	if err != nil {
		t.Fatal(err)
	}
	want := llm.Usage{Input: 1000, Output: 300, Reasoning: 200, CacheRead: 4000}
	if resp.Usage != want {
		t.Errorf("usage = %+v, want %+v", resp.Usage, want)
	}
	// gpt-4o-mini: 0.15 in, 0.60 out, 0.075 cached per million.
	if got, wantCost := reg.Cost(m.Name(), resp.Usage), (1000*0.15+300*0.60+4000*0.075)/1e6; !near(got, wantCost) {
		t.Errorf("cost = %v, want %v", got, wantCost)
	}
	var reasoning string
	for _, d := range deltas {
		reasoning += d.Reasoning
	}
	if reasoning != "hmm, let me think" {
		t.Errorf("reasoning deltas = %q", reasoning)
	}
	if p := resp.Message.Parts; len(p) != 2 || p[0].Type != llm.PartReasoning || p[0].Text != "hmm, let me think" || p[1].Text != "42" {
		t.Errorf("parts = %+v", p)
	}
	if got := srv.Requests()[0].Header.Get("Authorization"); got != "Bearer sk-env" {
		t.Errorf("Authorization = %q", got)
	}
}

func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		replies  []fakellm.Reply
		retries  int
		minWait  time.Duration
		requests int
		status   int // 0: success
	}{
		{"429 then success honours Retry-After", []fakellm.Reply{{Status: 429, Error: "rate limited", RetryAfter: "1"}, fakellm.TextReply("ok")}, 3, time.Second, 2, 0},
		{"503 twice then success", []fakellm.Reply{
			{Status: 503, Header: map[string][]string{"Retry-After-Ms": {"10"}}},
			{Status: 500, Header: map[string][]string{"Retry-After-Ms": {"10"}}},
			fakellm.TextReply("ok")}, 3, 20 * time.Millisecond, 3, 0},
		{"retries exhausted", []fakellm.Reply{
			{Status: 500, Error: "boom", Header: map[string][]string{"Retry-After-Ms": {"5"}}},
			{Status: 500, Error: "boom", Header: map[string][]string{"Retry-After-Ms": {"5"}}},
			{Status: 500, Error: "boom", Header: map[string][]string{"Retry-After-Ms": {"5"}}}}, 2, 10 * time.Millisecond, 3, 500},
		{"retries disabled", []fakellm.Reply{{Status: 429, RetryAfter: "1"}}, -1, 0, 1, 429},
		{"401 not retried", []fakellm.Reply{{Status: 401, Error: "Incorrect API key provided"}}, 3, 0, 1, 401},
		{"400 not retried", []fakellm.Reply{{Status: 400, Error: "bad request"}}, 3, 0, 1, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakellm.NewOpenAI(t)
			srv.Push(tc.replies...)
			m := newModel(t, srv, func(c *openai.Config) { c.MaxRetries = tc.retries })
			start := time.Now()
			resp, _, err := generate(t, m, userReq("hi"))
			elapsed := time.Since(start)
			if n := len(srv.Requests()); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			if elapsed < tc.minWait {
				t.Errorf("took %v, want at least %v", elapsed, tc.minWait)
			}
			if tc.status == 0 {
				if err != nil || resp.Message.Text() != "ok" {
					t.Fatalf("resp %+v, err %v", resp, err)
				}
				return
			}
			var apiErr *llm.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v (%T), want *llm.APIError", err, err)
			}
			if apiErr.StatusCode != tc.status || apiErr.Provider != "openai" || apiErr.Message == "" {
				t.Errorf("APIError = %+v", apiErr)
			}
			if got, want := apiErr.Retryable(), tc.status == 429 || tc.status >= 500; got != want {
				t.Errorf("Retryable() = %v", got)
			}
			if tc.status == 401 && !strings.Contains(err.Error(), "HTTP 401") {
				t.Errorf("error text %q", err)
			}
		})
	}
}

// A Retry-After longer than MaxRetryDelay fails at once, reporting the
// server's advice.
func TestRetryAfterTooLong(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	srv.Push(fakellm.Reply{Status: 429, Error: "quota", RetryAfter: "30"})
	m := newModel(t, srv, func(c *openai.Config) { c.MaxRetryDelay = 100 * time.Millisecond })
	start := time.Now()
	_, _, err := generate(t, m, userReq("hi"))
	var apiErr *llm.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.RetryAfter != 30*time.Second {
		t.Fatalf("err = %#v", err)
	}
	if time.Since(start) > 5*time.Second || len(srv.Requests()) != 1 {
		t.Errorf("retried: %d requests in %v", len(srv.Requests()), time.Since(start))
	}
}

func TestCancelMidStream(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	srv.Push(fakellm.Reply{Chunks: []string{"partial ", "answer"}, Hang: true})
	m := newModel(t, srv, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got strings.Builder
	var cancelledAt time.Time
	_, err := m.Generate(ctx, userReq("hi"), func(d llm.Delta) {
		got.WriteString(d.Text)
		if got.String() == "partial answer" {
			cancelledAt = time.Now()
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(cancelledAt); d > 2*time.Second {
		t.Errorf("Generate returned %v after cancel", d)
	}
}

func TestImages(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	srv.Push(fakellm.TextReply("a cat"))
	const dataURL = "data:image/png;base64,iVBORw0KGgo="
	req := &llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Parts: []llm.Part{
		llm.TextPart("what is this?"), llm.ImagePart(dataURL), llm.ImagePart("https://example.com/cat.jpg"),
	}}}}
	if _, _, err := generate(t, newModel(t, srv, nil), req); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Requests()[0].Messages()
	content, _ := msgs[0]["content"].([]any)
	if len(content) != 3 {
		t.Fatalf("content = %v", msgs[0]["content"])
	}
	want := []string{
		`{"text":"what is this?","type":"text"}`,
		`{"image_url":{"url":"` + dataURL + `"},"type":"image_url"}`,
		`{"image_url":{"url":"https://example.com/cat.jpg"},"type":"image_url"}`,
	}
	for i, w := range want {
		b, _ := json.Marshal(content[i])
		if string(b) != w {
			t.Errorf("part %d = %s, want %s", i, b, w)
		}
	}
}

func TestNoAPIKey(t *testing.T) {
	reg := llm.NewRegistry()
	reg.Getenv = mapEnv(nil)
	for _, name := range []string{"openai/gpt-4o", "openrouter/meta-llama/llama-3"} {
		if _, err := reg.Open(name); !errors.Is(err, llm.ErrNoAPIKey) {
			t.Errorf("%s: err = %v, want ErrNoAPIKey", name, err)
		}
	}
	if _, err := openai.New(openai.Config{Model: "gpt-4o"}); !errors.Is(err, llm.ErrNoAPIKey) {
		t.Errorf("New without key: err = %v", err)
	}
	for _, name := range []string{"ollama/llama3.2", "lmstudio/qwen", "vllm/x", "llamacpp/x", "opencode/big-pickle"} {
		if _, err := reg.Open(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The built-in OpenAI-compatible providers reach the server named by their
// base URL variable, with max_tokens and no Authorization header.
func TestBuiltinProviders(t *testing.T) {
	tests := []struct{ provider, env string }{
		{"ollama", "OLLAMA_BASE_URL"},
		{"lmstudio", "LMSTUDIO_BASE_URL"},
		{"vllm", "VLLM_BASE_URL"},
		{"llamacpp", "LLAMACPP_BASE_URL"},
	}
	for _, tc := range tests {
		t.Run(tc.provider, func(t *testing.T) {
			srv := fakellm.NewOpenAI(t)
			srv.Push(fakellm.TextReply("local"))
			reg := llm.NewRegistry()
			reg.Getenv = mapEnv(map[string]string{tc.env: srv.URL(), "OPENAI_API_KEY": "must-not-leak"})
			m, err := reg.Open(tc.provider + "/llama3.2")
			if err != nil {
				t.Fatal(err)
			}
			resp, _, err := generate(t, m, &llm.Request{Messages: []llm.Message{llm.UserText("hi")}, MaxTokens: 7})
			if err != nil || resp.Message.Text() != "local" {
				t.Fatalf("resp %+v, err %v", resp, err)
			}
			req := srv.Requests()[0]
			if req.Model() != "llama3.2" || req.Header.Get("Authorization") != "" || req.Body["max_tokens"] != 7.0 {
				t.Errorf("request: model %q, auth %q, body %s", req.Model(), req.Header.Get("Authorization"), req.Raw)
			}
		})
	}
}

// The conversation maps to the wire: tool results in their own messages,
// assistant tool calls with empty text, system messages.
func TestConversationMapping(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	srv.Push(fakellm.TextReply("done"))
	req := &llm.Request{Messages: []llm.Message{
		{Role: llm.RoleSystem, Parts: []llm.Part{llm.TextPart("extra system")}},
		llm.UserText("q"),
		{Role: llm.RoleAssistant, Parts: []llm.Part{
			{Type: llm.PartReasoning, Text: "hidden"},
			{Type: llm.PartToolCall, ToolCall: &llm.ToolCall{ID: "1", Name: "a", Args: json.RawMessage(`{"x":1}`)}},
			{Type: llm.PartToolCall, ToolCall: &llm.ToolCall{ID: "2", Name: "b"}},
		}},
		{Role: llm.RoleTool, Parts: []llm.Part{
			{Type: llm.PartToolResult, ToolResult: &llm.ToolResult{CallID: "1", Name: "a", Content: "r1"}},
			{Type: llm.PartToolResult, ToolResult: &llm.ToolResult{CallID: "2", Name: "b", Content: "Error: no", IsError: true}},
		}},
	}}
	if _, _, err := generate(t, newModel(t, srv, nil), req); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(srv.Requests()[0].Raw, &body); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"content":"extra system","role":"system"}`,
		`{"content":"q","role":"user"}`,
		`{"role":"assistant","tool_calls":[{"id":"1","function":{"arguments":"{\"x\":1}","name":"a"},"type":"function"},{"id":"2","function":{"arguments":"{}","name":"b"},"type":"function"}]}`,
		`{"content":"r1","tool_call_id":"1","role":"tool"}`,
		`{"content":"Error: no","tool_call_id":"2","role":"tool"}`,
	}
	if len(body.Messages) != len(want) {
		t.Fatalf("messages = %s", srv.Requests()[0].Raw)
	}
	for i, w := range want {
		if !jsonEqual(t, body.Messages[i], w) {
			t.Errorf("message %d = %s, want %s", i, body.Messages[i], w)
		}
	}
}

func jsonEqual(t *testing.T, a json.RawMessage, b string) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		t.Fatalf("bad JSON: %s / %s", a, b)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// BenchmarkStreamDecode measures one streamed completion of 200 text chunks
// and a tool call, end to end over loopback.
func BenchmarkStreamDecode(b *testing.B) {
	srv := fakellm.NewOpenAI(b)
	chunks := make([]string, 200)
	for i := range chunks {
		chunks[i] = "token "
	}
	reply := fakellm.Reply{Chunks: chunks, ToolCalls: []fakellm.ToolCall{{Name: "f", ArgChunks: []string{`{"a":`, `1}`}}},
		Usage: fakellm.Usage{Input: 10, Output: 200}}
	srv.Handle(func(fakellm.Request) fakellm.Reply { return reply })
	m, err := openai.New(openai.Config{Model: "m", BaseURL: srv.URL(), APIKey: "k"})
	if err != nil {
		b.Fatal(err)
	}
	req := userReq("hi")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Generate(ctx, req, func(llm.Delta) {}); err != nil {
			b.Fatal(err)
		}
	}
}

// An error event inside a streamed reply fails the call with an APIError
// after the text already streamed.
func TestStreamFailure(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	srv.Push(fakellm.Reply{Chunks: []string{"half"}, StreamError: "upstream died"})
	_, deltas, err := generate(t, newModel(t, srv, nil), userReq("hi"))
	var apiErr *llm.APIError
	if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "server_error: upstream died") {
		t.Fatalf("err = %v", err)
	}
	if len(deltas) != 1 || deltas[0].Text != "half" {
		t.Errorf("deltas = %+v", deltas)
	}
}

// A server that is not there fails with an error naming the provider.
func TestConnectionError(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	url := srv.URL()
	srv.Close()
	m, err := openai.New(openai.Config{Provider: "ollama", Model: "x", BaseURL: url, KeyOptional: true, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = generate(t, m, userReq("hi"))
	if err == nil || !strings.HasPrefix(err.Error(), "ollama: ") {
		t.Fatalf("err = %v", err)
	}
}

// One Model serves concurrent calls.
func TestConcurrentGenerate(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	srv.Handle(func(r fakellm.Request) fakellm.Reply {
		return fakellm.Reply{Chunks: []string{"echo ", r.LastUserText()}, Usage: fakellm.Usage{Input: 1, Output: 2}}
	})
	m := newModel(t, srv, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			q := strings.Repeat("q", i+1)
			resp, _, err := generate(t, m, userReq(q))
			if err != nil || resp.Message.Text() != "echo "+q {
				t.Errorf("call %d: %+v, %v", i, resp, err)
			}
		})
	}
	wg.Wait()
	if n := len(srv.Requests()); n != 8 {
		t.Errorf("%d requests", n)
	}
}
