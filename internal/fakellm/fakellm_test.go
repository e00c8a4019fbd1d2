package fakellm_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/agenthost/agenthost/internal/fakellm"
	"github.com/agenthost/agenthost/llm"
)

func openaiClient(srv *fakellm.Server) openai.Client {
	return openai.NewClient(option.WithBaseURL(srv.URL()), option.WithAPIKey("k"), option.WithMaxRetries(0))
}

func anthropicClient(srv *fakellm.Server) anthropic.Client {
	return anthropic.NewClient(aoption.WithBaseURL(srv.URL()), aoption.WithAPIKey("k"), aoption.WithMaxRetries(0))
}

// The OpenAI stream decodes with the official SDK and its accumulator.
func TestOpenAIStreamWithSDK(t *testing.T) {
	tests := []struct {
		name       string
		interleave bool
	}{{"sequential", false}, {"interleaved", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakellm.NewOpenAI(t)
			srv.Push(fakellm.Reply{
				Chunks: []string{"Hel", "lo"},
				ToolCalls: []fakellm.ToolCall{
					{NameChunks: []string{"get_", "weather"}, ArgChunks: []string{`{"city":`, `"Paris"}`}},
					{ID: "c2", Name: "time", ArgChunks: []string{`{"tz"`, `:"UTC"`, `}`}},
				},
				Interleave: tc.interleave,
				Usage:      fakellm.Usage{Input: 10, CacheRead: 5, Output: 7, Reasoning: 2},
			})
			c := openaiClient(srv)
			stream := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
				Model:         "m1",
				Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
			})
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				if !acc.AddChunk(stream.Current()) {
					t.Fatalf("chunk rejected: %s", stream.Current().RawJSON())
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			msg := acc.Choices[0].Message
			if msg.Content != "Hello" || len(msg.ToolCalls) != 2 {
				t.Fatalf("message = %+v", msg)
			}
			if tc := msg.ToolCalls[0]; tc.ID != "call_1" || tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"city":"Paris"}` {
				t.Errorf("call 0 = %+v", tc)
			}
			if tc := msg.ToolCalls[1]; tc.ID != "c2" || tc.Function.Name != "time" || tc.Function.Arguments != `{"tz":"UTC"}` {
				t.Errorf("call 1 = %+v", tc)
			}
			u := acc.Usage
			if u.PromptTokens != 15 || u.PromptTokensDetails.CachedTokens != 5 || u.CompletionTokens != 7 || u.CompletionTokensDetails.ReasoningTokens != 2 {
				t.Errorf("usage = %+v", u)
			}
			if acc.Choices[0].FinishReason != "tool_calls" {
				t.Errorf("finish = %q", acc.Choices[0].FinishReason)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 || reqs[0].Model() != "m1" || !reqs[0].Stream() || reqs[0].LastUserText() != "hi" {
				t.Errorf("requests = %+v", reqs)
			}
			if got := reqs[0].Header.Get("Authorization"); got != "Bearer k" {
				t.Errorf("Authorization = %q", got)
			}
		})
	}
}

func TestOpenAINonStreaming(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	srv.Handle(func(r fakellm.Request) fakellm.Reply {
		return fakellm.Reply{Text: "echo: " + r.LastUserText() + " / " + r.System(), Usage: fakellm.Usage{Input: 3, Output: 2}}
	})
	c := openaiClient(srv)
	resp, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "m",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("sys"), openai.UserMessage("q")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "echo: q / sys" {
		t.Errorf("content = %q", got)
	}
	if resp.Usage.PromptTokens != 3 || resp.Usage.CompletionTokens != 2 {
		t.Errorf("usage = %+v", resp.Usage)
	}
}

func TestErrorReplies(t *testing.T) {
	tests := []struct {
		name string
		srv  func(testing.TB) *fakellm.Server
		path string
		want string
	}{
		{"openai", fakellm.NewOpenAI, "/chat/completions", `"error":{"code":null,"message":"slow down","param":null,"type":"rate_limit_error"}`},
		{"anthropic", fakellm.NewAnthropic, "/v1/messages", `{"error":{"message":"slow down","type":"rate_limit_error"},"type":"error"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.srv(t)
			srv.Push(fakellm.Reply{Status: 429, Error: "slow down", RetryAfter: "2"})
			res, err := http.Post(srv.URL()+tc.path, "application/json", strings.NewReader(`{"model":"x"}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 429 || res.Header.Get("Retry-After") != "2" || !strings.Contains(string(body), tc.want) {
				t.Errorf("status %d, Retry-After %q, body %s", res.StatusCode, res.Header.Get("Retry-After"), body)
			}
			if srv.Pending() != 0 || len(srv.Requests()) != 1 {
				t.Errorf("pending %d, requests %d", srv.Pending(), len(srv.Requests()))
			}
		})
	}
}

// The Anthropic stream decodes with the official SDK and its accumulator.
func TestAnthropicStreamWithSDK(t *testing.T) {
	srv := fakellm.NewAnthropic(t)
	srv.Push(fakellm.Reply{
		Reasoning: []string{"let me ", "think"},
		Chunks:    []string{"Hel", "lo"},
		ToolCalls: []fakellm.ToolCall{{ID: "tu1", Name: "get_weather", ArgChunks: []string{`{"ci`, `ty":"Paris"}`}}},
		Usage:     fakellm.Usage{Input: 10, CacheRead: 5, CacheWrite: 3, Output: 7},
	})
	c := anthropicClient(srv)
	stream := c.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{
		Model: "claude-x", MaxTokens: 100,
		System:   []anthropic.TextBlockParam{{Text: "be brief"}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	})
	var msg anthropic.Message
	for stream.Next() {
		if err := msg.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 3 {
		t.Fatalf("content = %+v", msg.Content)
	}
	if b := msg.Content[0]; b.Type != "thinking" || b.Thinking != "let me think" {
		t.Errorf("thinking = %+v", b)
	}
	if b := msg.Content[1]; b.Type != "text" || b.Text != "Hello" {
		t.Errorf("text = %+v", b)
	}
	var args map[string]string
	if b := msg.Content[2]; b.Type != "tool_use" || b.ID != "tu1" || b.Name != "get_weather" || json.Unmarshal(b.Input, &args) != nil || args["city"] != "Paris" {
		t.Errorf("tool_use = %+v", b)
	}
	u := msg.Usage
	if u.InputTokens != 10 || u.CacheReadInputTokens != 5 || u.CacheCreationInputTokens != 3 || u.OutputTokens != 7 {
		t.Errorf("usage = %+v", u)
	}
	if msg.StopReason != "tool_use" {
		t.Errorf("stop = %q", msg.StopReason)
	}
	req := srv.Requests()[0]
	if req.System() != "be brief" || req.LastUserText() != "hi" || req.Header.Get("X-Api-Key") != "k" {
		t.Errorf("request = %+v", req)
	}
}

func TestAnthropicNonStreaming(t *testing.T) {
	srv := fakellm.NewAnthropic(t)
	srv.Push(fakellm.Reply{Text: "hi", ToolCalls: []fakellm.ToolCall{{Name: "f", Args: `{"a":1}`}}, Usage: fakellm.Usage{Input: 1, Output: 2}})
	c := anthropicClient(srv)
	msg, err := c.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: "claude-x", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 2 || msg.Content[0].Text != "hi" || msg.Content[1].Name != "f" || string(msg.Content[1].Input) != `{"a":1}` {
		t.Errorf("message = %+v", msg.Content)
	}
}

// A hanging reply holds the stream until the client cancels.
func TestHangUntilCancel(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	srv.Push(fakellm.Reply{Chunks: []string{"partial"}, Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := openaiClient(srv)
	stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var text string
	for stream.Next() {
		text += stream.Current().Choices[0].Delta.Content
		if text == "partial" {
			time.AfterFunc(20*time.Millisecond, cancel)
		}
	}
	if err := stream.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// Registry points a "fake/..." model at the server through the real
// provider packages.
func TestRegistry(t *testing.T) {
	for _, newSrv := range []func(testing.TB) *fakellm.Server{fakellm.NewOpenAI, fakellm.NewAnthropic} {
		srv := newSrv(t)
		srv.Push(fakellm.TextReply("hi ", "there"))
		m, err := srv.Registry().Open("fake/judge-1")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := m.Generate(context.Background(), &llm.Request{Messages: []llm.Message{llm.UserText("hello")}}, nil)
		if err != nil || resp.Message.Text() != "hi there" {
			t.Fatalf("%s: %+v, %v", srv.Protocol(), resp, err)
		}
		if r := srv.Requests()[0]; r.Model() != "judge-1" || r.LastUserText() != "hello" {
			t.Errorf("%s: request %s", srv.Protocol(), r.Raw)
		}
	}
}
