package fakellm

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

func (r Reply) anthropicStop() string {
	switch {
	case r.StopReason != "":
		return r.StopReason
	case len(r.ToolCalls) > 0:
		return "tool_use"
	}
	return "end_turn"
}

func anthropicToolID(c ToolCall, i int) string {
	if c.ID != "" {
		return c.ID
	}
	return fmt.Sprintf("toolu_%d", i+1)
}

func anthropicUsage(u Usage, output int64) map[string]any {
	return map[string]any{
		"input_tokens":                u.Input,
		"output_tokens":               output,
		"cache_read_input_tokens":     u.CacheRead,
		"cache_creation_input_tokens": u.CacheWrite,
	}
}

// streamAnthropic writes a Messages event stream: message_start, a ping,
// one content block per reasoning/text/tool call, message_delta and
// message_stop.
func streamAnthropic(sw *sseWriter, req Request, r Reply, n int) {
	sw.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": fmt.Sprintf("msg_%d", n), "type": "message", "role": "assistant", "content": []any{},
		"model": modelOf(req), "stop_reason": nil, "stop_sequence": nil,
		"usage": anthropicUsage(r.Usage, min(r.Usage.Output, 1)),
	}}, true)
	sw.event("ping", map[string]any{"type": "ping"}, false)
	idx := 0
	block := func(start map[string]any, deltas []map[string]any) {
		sw.event("content_block_start", map[string]any{"type": "content_block_start", "index": idx, "content_block": start}, true)
		for _, d := range deltas {
			sw.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": idx, "delta": d}, true)
		}
		sw.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": idx}, false)
		idx++
	}
	if len(r.Reasoning) > 0 {
		var ds []map[string]any
		for _, s := range r.Reasoning {
			ds = append(ds, map[string]any{"type": "thinking_delta", "thinking": s})
		}
		ds = append(ds, map[string]any{"type": "signature_delta", "signature": "fakesig"})
		block(map[string]any{"type": "thinking", "thinking": "", "signature": ""}, ds)
	}
	if chunks := r.textChunks(); len(chunks) > 0 {
		var ds []map[string]any
		for _, s := range chunks {
			ds = append(ds, map[string]any{"type": "text_delta", "text": s})
		}
		block(map[string]any{"type": "text", "text": ""}, ds)
	}
	for i, c := range r.ToolCalls {
		var ds []map[string]any
		for _, a := range c.args() {
			ds = append(ds, map[string]any{"type": "input_json_delta", "partial_json": a})
		}
		block(map[string]any{"type": "tool_use", "id": anthropicToolID(c, i), "name": strings.Join(c.names(), ""), "input": map[string]any{}}, ds)
	}
	if r.Hang {
		return
	}
	if r.StreamError != "" {
		typ := r.ErrorType
		if typ == "" {
			typ = "overloaded_error"
		}
		sw.event("error", map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": r.StreamError}}, false)
		return
	}
	sw.event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": r.anthropicStop(), "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": r.Usage.Output}}, false)
	sw.event("message_stop", map[string]any{"type": "message_stop"}, false)
}

// anthropicMessage is the non-streaming message body.
func anthropicMessage(req Request, r Reply, n int) map[string]any {
	content := []any{}
	if len(r.Reasoning) > 0 {
		content = append(content, map[string]any{"type": "thinking", "thinking": strings.Join(r.Reasoning, ""), "signature": "fakesig"})
	}
	if text := strings.Join(r.textChunks(), ""); text != "" {
		content = append(content, map[string]any{"type": "text", "text": text})
	}
	for i, c := range r.ToolCalls {
		var input any = map[string]any{}
		_ = json.Unmarshal([]byte(strings.Join(c.args(), "")), &input)
		content = append(content, map[string]any{"type": "tool_use", "id": anthropicToolID(c, i), "name": strings.Join(c.names(), ""), "input": input})
	}
	if r.Delay > 0 {
		time.Sleep(r.Delay)
	}
	return map[string]any{
		"id": fmt.Sprintf("msg_%d", n), "type": "message", "role": "assistant", "content": content,
		"model": modelOf(req), "stop_reason": r.anthropicStop(), "stop_sequence": nil,
		"usage": anthropicUsage(r.Usage, r.Usage.Output),
	}
}
