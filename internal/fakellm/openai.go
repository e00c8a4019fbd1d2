package fakellm

import (
	"fmt"
	"strings"
	"time"
)

const fakeCreated = 1767225600 // 2026-01-01, a fixed "created" stamp

func (r Reply) openAIStop() string {
	switch {
	case r.StopReason != "":
		return r.StopReason
	case len(r.ToolCalls) > 0:
		return "tool_calls"
	}
	return "stop"
}

func openAIToolID(c ToolCall, i int) string {
	if c.ID != "" {
		return c.ID
	}
	return fmt.Sprintf("call_%d", i+1)
}

func openAIUsage(u Usage) map[string]any {
	return map[string]any{
		"prompt_tokens":             u.Input + u.CacheRead,
		"completion_tokens":         u.Output,
		"total_tokens":              u.Input + u.CacheRead + u.Output,
		"prompt_tokens_details":     map[string]any{"cached_tokens": u.CacheRead, "audio_tokens": 0},
		"completion_tokens_details": map[string]any{"reasoning_tokens": u.Reasoning, "audio_tokens": 0},
	}
}

func modelOf(req Request) string {
	if m := req.Model(); m != "" {
		return m
	}
	return "fake-model"
}

// streamOpenAI writes a chat.completion.chunk stream ending in [DONE].
func streamOpenAI(sw *sseWriter, req Request, r Reply, n int) {
	id := fmt.Sprintf("chatcmpl-%d", n)
	model := modelOf(req)
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": fakeCreated, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}},
		}
	}
	sw.event("", chunk(map[string]any{"role": "assistant", "content": ""}, nil), true)
	for _, s := range r.Reasoning {
		sw.event("", chunk(map[string]any{"reasoning_content": s}, nil), true)
	}
	for _, s := range r.textChunks() {
		sw.event("", chunk(map[string]any{"content": s}, nil), true)
	}
	for _, d := range openAIToolDeltas(r) {
		sw.event("", chunk(map[string]any{"tool_calls": []any{d}}, nil), true)
	}
	if r.Hang {
		return
	}
	if r.StreamError != "" {
		typ := r.ErrorType
		if typ == "" {
			typ = "server_error"
		}
		sw.event("", map[string]any{"error": map[string]any{"message": r.StreamError, "type": typ, "param": nil, "code": nil}}, false)
		return
	}
	sw.event("", chunk(map[string]any{}, r.openAIStop()), false)
	if opts, _ := req.Body["stream_options"].(map[string]any); opts["include_usage"] == true {
		sw.event("", map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": fakeCreated, "model": model,
			"choices": []any{}, "usage": openAIUsage(r.Usage),
		}, false)
	}
	sw.event("", "[DONE]", false)
}

// openAIToolDeltas returns one tool_calls delta entry per chunk: the first
// of each call carries id, type and the first name piece; later ones carry
// further name and argument pieces, addressed by index only.
func openAIToolDeltas(r Reply) []map[string]any {
	perCall := make([][]map[string]any, len(r.ToolCalls))
	for i, c := range r.ToolCalls {
		names := c.names()
		for j, name := range names {
			fn := map[string]any{"name": name}
			d := map[string]any{"index": i, "function": fn}
			if j == 0 {
				d["id"] = openAIToolID(c, i)
				d["type"] = "function"
				fn["arguments"] = ""
			}
			perCall[i] = append(perCall[i], d)
		}
		for _, a := range c.args() {
			perCall[i] = append(perCall[i], map[string]any{"index": i, "function": map[string]any{"arguments": a}})
		}
	}
	var out []map[string]any
	if !r.Interleave {
		for _, ds := range perCall {
			out = append(out, ds...)
		}
		return out
	}
	for k := 0; ; k++ {
		more := false
		for _, ds := range perCall {
			if k < len(ds) {
				out = append(out, ds[k])
				more = true
			}
		}
		if !more {
			return out
		}
	}
}

// openAICompletion is the non-streaming chat.completion body.
func openAICompletion(req Request, r Reply, n int) map[string]any {
	msg := map[string]any{"role": "assistant", "content": nil, "refusal": nil}
	if text := strings.Join(r.textChunks(), ""); text != "" {
		msg["content"] = text
	}
	if len(r.Reasoning) > 0 {
		msg["reasoning_content"] = strings.Join(r.Reasoning, "")
	}
	if len(r.ToolCalls) > 0 {
		calls := make([]any, len(r.ToolCalls))
		for i, c := range r.ToolCalls {
			calls[i] = map[string]any{
				"id": openAIToolID(c, i), "type": "function",
				"function": map[string]any{"name": strings.Join(c.names(), ""), "arguments": strings.Join(c.args(), "")},
			}
		}
		msg["tool_calls"] = calls
	}
	if r.Delay > 0 {
		time.Sleep(r.Delay)
	}
	return map[string]any{
		"id": fmt.Sprintf("chatcmpl-%d", n), "object": "chat.completion", "created": fakeCreated, "model": modelOf(req),
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": r.openAIStop(), "logprobs": nil}},
		"usage":   openAIUsage(r.Usage),
	}
}
