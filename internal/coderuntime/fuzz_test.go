package coderuntime

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/llm"
)

// FuzzSanitizeName checks that no name leaves uploads/: what comes out is
// a plain base name of safe characters, or nothing.
func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"data.csv", "../../etc/passwd", `..\..\x.txt`, ".hidden", "a/b/../c.go", "..", ".", "", "名前.md", strings.Repeat("a", 300) + ".txt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		out := SanitizeName(name)
		if out == "" {
			return
		}
		if len(out) > 200 || strings.HasPrefix(out, ".") || out == ".." {
			t.Fatalf("%q → %q", name, out)
		}
		for _, c := range out {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				t.Fatalf("%q → %q has %q", name, out, c)
			}
		}
	})
}

// FuzzReadEvents feeds arbitrary streams to the SSE reader.
func FuzzReadEvents(f *testing.F) {
	f.Add("id: 1\nevent: status\ndata: {\"sessionId\":\"s\"}\n\n: ping\n\n")
	f.Add("data: a\ndata: b\n\nid: x\n\n")
	f.Fuzz(func(t *testing.T, stream string) {
		n := 0
		for ev, err := range ReadEvents(strings.NewReader(stream)) {
			if err != nil {
				break
			}
			if ev.ID < 0 && ev.Type == "" && len(ev.Data) == 0 {
				t.Fatal("empty event")
			}
			n++
		}
		if n > len(stream) {
			t.Fatalf("%d events from %d bytes", n, len(stream))
		}
	})
}

// TestRenderFoldsToolResults checks the seed shape of a conversation with
// tool calls, a hidden message and a result without its call.
func TestRenderFoldsToolResults(t *testing.T) {
	msgs := mustMessages(t, `[
	 {"id":"u","role":"user","parts":[{"type":"text","text":"hi"}],"created":1705312200000},
	 {"id":"h","role":"user","hidden":true,"parts":[{"type":"text","text":"secret"}]},
	 {"id":"a","role":"assistant","parts":[{"type":"text","text":"ok"},{"type":"tool_call","tool_call":{"id":"c1","name":"bash","args":{"command":"ls"}}},{"type":"tool_call","tool_call":{"id":"c2","name":"read"}}],
	  "usage":{"input":3,"output":97,"cache_write":12701},"cost":0.08,"created":1705312200000,"completed":1705312260000},
	 {"id":"t","role":"tool","parts":[{"type":"tool_result","tool_result":{"call_id":"c1","name":"bash","content":"x"}},{"type":"tool_result","tool_result":{"call_id":"c2","name":"read","content":"Error: no such file","is_error":true}},{"type":"tool_result","tool_result":{"call_id":"zz","content":"orphan"}}]}
	]`)
	out := render(msgs)
	if len(out) != 2 || out[0].Info.Tokens != nil || out[0].Info.Time.Created != 1705312200 {
		t.Fatalf("render: %+v", out)
	}
	a := out[1].Info
	if a.Time.Completed != 1705312260 || *a.Cost != 0.08 || a.Tokens.Total != 12801 || a.Tokens.Cache.Write != 12701 {
		t.Fatalf("assistant: %+v %+v", a, a.Tokens)
	}
	if p := a.Parts[1]; p.Tool != "bash" || p.State.Status != "completed" || p.State.Output != "x" || string(p.State.Input) != `{"command":"ls"}` {
		t.Fatalf("bash part: %+v", p.State)
	}
	if p := a.Parts[2]; p.State.Status != "error" || p.State.Error != "no such file" || string(p.State.Input) != "{}" {
		t.Fatalf("read part: %+v", p.State)
	}
	if u := usageOf(out); u.Tokens.Total != 12801 || u.Cost != 0.08 {
		t.Fatalf("usage: %+v", u)
	}
}

func mustMessages(t *testing.T, s string) []llm.Message {
	t.Helper()
	var msgs []llm.Message
	if err := json.Unmarshal([]byte(s), &msgs); err != nil {
		t.Fatal(err)
	}
	return msgs
}
