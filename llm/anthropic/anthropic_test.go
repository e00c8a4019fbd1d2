package anthropic_test

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
	"github.com/agenthost/agenthost/llm/anthropic"
)

func newModel(t *testing.T, srv *fakellm.Server, mod func(*anthropic.Config)) *anthropic.Model {
	t.Helper()
	cfg := anthropic.Config{Model: "claude-sonnet-4-6", BaseURL: srv.URL(), APIKey: "test-key"}
	if mod != nil {
		mod(&cfg)
	}
	m, err := anthropic.New(cfg)
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

func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestStreamingText(t *testing.T) {
	tests := []struct {
		name      string
		chunks    []string
		stop      string
		want      string
		maxTokens int
		wantMax   float64
	}{
		{"one chunk, default max tokens", []string{"Hello"}, "", "stop", 0, 4096},
		{"several chunks", []string{"He", "llo", ", ", "world"}, "", "stop", 100, 100},
		{"max_tokens", []string{"cut"}, "max_tokens", "length", 3, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakellm.NewAnthropic(t)
			srv.Push(fakellm.Reply{Chunks: tc.chunks, StopReason: tc.stop, Usage: fakellm.Usage{Input: 12, Output: 4}})
			resp, deltas, err := generate(t, newModel(t, srv, nil), &llm.Request{System: "be brief", Messages: []llm.Message{llm.UserText("hi")}, MaxTokens: tc.maxTokens})
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
			if !req.Stream() || req.Model() != "claude-sonnet-4-6" || req.System() != "be brief" || req.LastUserText() != "hi" || req.Body["max_tokens"] != tc.wantMax {
				t.Errorf("request = %s", req.Raw)
			}
			if req.Header.Get("X-Api-Key") != "test-key" || req.Header.Get("Anthropic-Version") == "" {
				t.Errorf("headers = %v", req.Header)
			}
		})
	}
}

type weatherArgs struct {
	City string `json:"city" jsonschema:"the city"`
}

// A tool round trip with input_json_delta split over events, driven by the
// real agent loop with the model opened by name through a registry.
func TestToolRoundTripThroughAgent(t *testing.T) {
	srv := fakellm.NewAnthropic(t)
	srv.Push(
		fakellm.Reply{
			Chunks:    []string{"Checking."},
			ToolCalls: []fakellm.ToolCall{{ID: "toolu_w", Name: "get_weather", ArgChunks: []string{`{"ci`, `ty": "Pa`, `ris"}`}}},
			Usage:     fakellm.Usage{Input: 100, Output: 20, CacheRead: 50, CacheWrite: 10},
		},
		fakellm.Reply{Chunks: []string{"Sunny ", "in Paris."}, Usage: fakellm.Usage{Input: 150, Output: 10, CacheRead: 50}},
	)
	reg := llm.NewRegistry()
	reg.Getenv = mapEnv(map[string]string{"ANTHROPIC_BASE_URL": srv.URL(), "ANTHROPIC_API_KEY": "sk-ant"})

	var mu sync.Mutex
	var cities []string
	tool := agent.MustTool("get_weather", "Weather in a city.", func(_ context.Context, a weatherArgs) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		cities = append(cities, a.City)
		return "sunny", nil
	})
	a, err := agent.New("w", agent.WithRegistry(reg), agent.WithModel("anthropic/claude-sonnet-4-6"), agent.WithTools(tool), agent.WithSystemPrompt("sys"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conv agent.Conversation
	var res *agent.Result
	for ev := range a.Run(ctx, &conv, []llm.Message{llm.UserText("weather in Paris?")}) {
		if ev.Type == agent.EventResult {
			res = ev.Result
		}
	}
	if res == nil || res.Status != agent.StatusCompleted || res.Text != "Sunny in Paris." {
		t.Fatalf("result = %+v", res)
	}
	if len(cities) != 1 || cities[0] != "Paris" {
		t.Errorf("tool calls = %v", cities)
	}
	wantUsage := llm.Usage{Input: 250, Output: 30, CacheRead: 100, CacheWrite: 10}
	if res.Usage != wantUsage {
		t.Errorf("usage = %+v, want %+v", res.Usage, wantUsage)
	}
	// claude-sonnet-4-6: 3 in, 15 out, 0.30 cache read, 3.75 cache write.
	if want := (250*3 + 30*15 + 100*0.30 + 10*3.75) / 1e6; !near(res.Cost, want) {
		t.Errorf("cost = %v, want %v", res.Cost, want)
	}

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if !jsonEqual(t, mustJSON(reqs[0].Body["tools"]),
		`[{"name":"get_weather","description":"Weather in a city.","input_schema":{"type":"object","additionalProperties":false,"properties":{"city":{"type":"string","description":"the city"}},"required":["city"]}}]`) {
		t.Errorf("tools = %s", mustJSON(reqs[0].Body["tools"]))
	}
	msgs := reqs[1].Messages()
	if len(msgs) != 3 {
		t.Fatalf("second request: %s", reqs[1].Raw)
	}
	want := []string{
		`{"role":"user","content":[{"type":"text","text":"weather in Paris?"}]}`,
		`{"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_w","name":"get_weather","input":{"city":"Paris"}}]}`,
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_w","is_error":false,"content":[{"type":"text","text":"sunny"}],"cache_control":{"type":"ephemeral"}}]}`,
	}
	for i, w := range want {
		if !jsonEqual(t, mustJSON(msgs[i]), w) {
			t.Errorf("message %d = %s, want %s", i, mustJSON(msgs[i]), w)
		}
	}
	if reqs[1].System() != "sys" {
		t.Errorf("system = %q", reqs[1].System())
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-12 && d > -1e-12 }

func mustJSON(v any) json.RawMessage { b, _ := json.Marshal(v); return b }

func jsonEqual(t *testing.T, a json.RawMessage, b string) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		t.Fatalf("bad JSON: %s / %s", a, b)
	}
	return string(mustJSON(x)) == string(mustJSON(y))
}

func TestParallelToolUseAndThinking(t *testing.T) {
	srv := fakellm.NewAnthropic(t)
	srv.Push(fakellm.Reply{
		Reasoning: []string{"two ", "lookups"},
		ToolCalls: []fakellm.ToolCall{
			{ID: "a", Name: "left", ArgChunks: []string{`{"text"`, `:"x"}`}},
			{ID: "b", Name: "right", ArgChunks: []string{`{"te`, `xt":`, `"y"}`}},
			{ID: "c", Name: "noargs", ArgChunks: []string{""}},
		},
	})
	resp, deltas, err := generate(t, newModel(t, srv, nil), userReq("go"))
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
			t.Errorf("call %d = %+v (%s), want %+v", i, calls[i], calls[i].Args, want[i])
		}
	}
	if resp.StopReason != "tool_calls" {
		t.Errorf("stop = %q", resp.StopReason)
	}
	var reasoning string
	for _, d := range deltas {
		reasoning += d.Reasoning
	}
	if p := resp.Message.Parts[0]; reasoning != "two lookups" || p.Type != llm.PartReasoning || p.Text != "two lookups" {
		t.Errorf("reasoning deltas %q, first part %+v", reasoning, p)
	}
}

func TestRetries(t *testing.T) {
	ms := func(v string) map[string][]string { return map[string][]string{"Retry-After-Ms": {v}} }
	tests := []struct {
		name     string
		replies  []fakellm.Reply
		retries  int
		minWait  time.Duration
		requests int
		status   int // 0: success
	}{
		{"429 then success honours Retry-After", []fakellm.Reply{{Status: 429, Error: "rate limited", RetryAfter: "1"}, fakellm.TextReply("ok")}, 3, time.Second, 2, 0},
		{"529 overloaded then success", []fakellm.Reply{{Status: 529, Header: ms("10")}, {Status: 500, Header: ms("10")}, fakellm.TextReply("ok")}, 3, 20 * time.Millisecond, 3, 0},
		{"retries exhausted", []fakellm.Reply{{Status: 529, Error: "Overloaded", Header: ms("5")}, {Status: 529, Error: "Overloaded", Header: ms("5")}, {Status: 529, Error: "Overloaded", Header: ms("5")}}, 2, 10 * time.Millisecond, 3, 529},
		{"retries disabled", []fakellm.Reply{{Status: 429, RetryAfter: "1"}}, -1, 0, 1, 429},
		{"401 not retried", []fakellm.Reply{{Status: 401, Error: "invalid x-api-key"}}, 3, 0, 1, 401},
		{"400 not retried", []fakellm.Reply{{Status: 400, Error: "messages: roles must alternate"}}, 3, 0, 1, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakellm.NewAnthropic(t)
			srv.Push(tc.replies...)
			m := newModel(t, srv, func(c *anthropic.Config) { c.MaxRetries = tc.retries })
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
			if apiErr.StatusCode != tc.status || apiErr.Provider != "anthropic" || apiErr.Message == "" {
				t.Errorf("APIError = %+v", apiErr)
			}
			if got, want := apiErr.Retryable(), tc.status == 429 || tc.status >= 500; got != want {
				t.Errorf("Retryable() = %v", got)
			}
			if tc.status == 401 && !strings.Contains(err.Error(), "invalid x-api-key") {
				t.Errorf("error text %q", err)
			}
		})
	}
}

func TestRetryAfterTooLong(t *testing.T) {
	srv := fakellm.NewAnthropic(t)
	srv.Push(fakellm.Reply{Status: 429, Error: "slow down", RetryAfter: "30"})
	m := newModel(t, srv, func(c *anthropic.Config) { c.MaxRetryDelay = 100 * time.Millisecond })
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
	srv := fakellm.NewAnthropic(t)
	srv.Push(fakellm.Reply{Chunks: []string{"partial ", "answer"}, Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got strings.Builder
	var cancelledAt time.Time
	_, err := newModel(t, srv, nil).Generate(ctx, userReq("hi"), func(d llm.Delta) {
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
	srv := fakellm.NewAnthropic(t)
	srv.Push(fakellm.TextReply("a cat"))
	req := &llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Parts: []llm.Part{
		llm.TextPart("what is this?"), llm.ImagePart("data:image/png;base64,iVBORw0KGgo="), llm.ImagePart("https://example.com/cat.jpg"),
	}}}}
	if _, _, err := generate(t, newModel(t, srv, nil), req); err != nil {
		t.Fatal(err)
	}
	want := `[{"type":"text","text":"what is this?"},
		{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
		{"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"},"cache_control":{"type":"ephemeral"}}]`
	if got := mustJSON(srv.Requests()[0].Messages()[0]["content"]); !jsonEqual(t, got, want) {
		t.Errorf("content = %s", got)
	}
	// A data: URL that is not base64 is refused before any request.
	bad := &llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Parts: []llm.Part{llm.ImagePart("data:image/png,rawbytes")}}}}
	if _, _, err := generate(t, newModel(t, srv, nil), bad); err == nil || len(srv.Requests()) != 1 {
		t.Errorf("err = %v, %d requests", err, len(srv.Requests()))
	}
}

// Consecutive messages of one wire role merge, system messages join the
// system prompt, and reasoning parts are not sent back.
func TestConversationMapping(t *testing.T) {
	srv := fakellm.NewAnthropic(t)
	srv.Push(fakellm.TextReply("done"))
	req := &llm.Request{System: "base", Messages: []llm.Message{
		{Role: llm.RoleSystem, Parts: []llm.Part{llm.TextPart("extra")}},
		llm.UserText("q1"),
		llm.UserText("q2"),
		{Role: llm.RoleAssistant, Parts: []llm.Part{{Type: llm.PartReasoning, Text: "hidden"}, llm.TextPart("a")}},
	}}
	if _, _, err := generate(t, newModel(t, srv, nil), req); err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	want := `[{"role":"user","content":[{"type":"text","text":"q1"},{"type":"text","text":"q2"}]},
		{"role":"assistant","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}]}]`
	if got := mustJSON(r.Body["messages"]); !jsonEqual(t, got, want) {
		t.Errorf("messages = %s", got)
	}
	if r.System() != "base\n\nextra" {
		t.Errorf("system = %q", r.System())
	}
}

func TestNoAPIKey(t *testing.T) {
	reg := llm.NewRegistry()
	reg.Getenv = mapEnv(nil)
	if _, err := reg.Open("anthropic/claude-sonnet-4-6"); !errors.Is(err, llm.ErrNoAPIKey) {
		t.Errorf("registry: err = %v, want ErrNoAPIKey", err)
	}
	if _, err := anthropic.New(anthropic.Config{Model: "claude-sonnet-4-6"}); !errors.Is(err, llm.ErrNoAPIKey) {
		t.Errorf("New: err = %v, want ErrNoAPIKey", err)
	}
}

// An error event inside a streamed reply (Anthropic's overloaded_error)
// fails the call with a retryable APIError after the streamed text.
func TestStreamFailure(t *testing.T) {
	srv := fakellm.NewAnthropic(t)
	srv.Push(fakellm.Reply{Chunks: []string{"half"}, StreamError: "Overloaded"})
	_, deltas, err := generate(t, newModel(t, srv, nil), userReq("hi"))
	var apiErr *llm.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 529 || !apiErr.Retryable() || !strings.Contains(apiErr.Message, "Overloaded") {
		t.Fatalf("err = %#v", err)
	}
	if len(deltas) != 1 || deltas[0].Text != "half" {
		t.Errorf("deltas = %+v", deltas)
	}
}

func TestConnectionError(t *testing.T) {
	srv := fakellm.NewAnthropic(t)
	url := srv.URL()
	srv.Close()
	m, err := anthropic.New(anthropic.Config{Model: "x", BaseURL: url, APIKey: "k", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := generate(t, m, userReq("hi")); err == nil || !strings.HasPrefix(err.Error(), "anthropic: ") {
		t.Fatalf("err = %v", err)
	}
}

// Prompt caching marks the system prompt and the newest block, unless
// turned off.
func TestPromptCacheBreakpoints(t *testing.T) {
	for _, noCache := range []bool{false, true} {
		srv := fakellm.NewAnthropic(t)
		srv.Push(fakellm.TextReply("ok"))
		m := newModel(t, srv, func(c *anthropic.Config) { c.NoCache = noCache })
		req := &llm.Request{System: "sys", Messages: []llm.Message{llm.UserText("one"), {Role: llm.RoleAssistant, Parts: []llm.Part{llm.TextPart("two")}}, llm.UserText("three")}}
		if _, _, err := generate(t, m, req); err != nil {
			t.Fatal(err)
		}
		raw := string(srv.Requests()[0].Raw)
		n := strings.Count(raw, `"cache_control":{"type":"ephemeral"}`)
		if want := map[bool]int{false: 2, true: 0}[noCache]; n != want {
			t.Errorf("NoCache=%v: %d breakpoints, want %d: %s", noCache, n, want, raw)
		}
		if !noCache && !strings.Contains(raw, `"text":"three","cache_control":{"type":"ephemeral"}`) &&
			!strings.Contains(raw, `"cache_control":{"type":"ephemeral"},"text":"three"`) {
			t.Errorf("newest block not marked: %s", raw)
		}
	}
}
