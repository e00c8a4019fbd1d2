// Package offline is a built-in model that needs no network and no key.
//
// It is deterministic: the same conversation always yields the same answer.
// It answers from the conversation (remembering facts such as "my name is
// John"), and when the user names a tool together with a word such as "use",
// "call" or "run", it calls that tool, so the whole tool loop runs offline.
// Every answer says that it comes from the offline demo model.
//
// Model names: "offline/demo" streams at full speed; "offline/slow" pauses
// between chunks (100ms, or AGENTHOST_OFFLINE_DELAY) so that streaming,
// busy states and aborts can be watched.
package offline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/agenthost/agenthost/llm"
)

// Prefix starts every answer so nobody mistakes it for a real model.
const Prefix = "[offline demo model] "

func init() {
	llm.RegisterKind("offline", func(name, model string, _ llm.ResolvedProvider) (llm.Model, error) {
		m := &Model{name: name}
		switch model {
		case "demo":
		case "slow":
			m.Delay = 100 * time.Millisecond
			if d, err := time.ParseDuration(os.Getenv("AGENTHOST_OFFLINE_DELAY")); err == nil {
				m.Delay = d
			}
		default:
			return nil, fmt.Errorf("model %q: the offline provider has models demo and slow: %w", name, llm.ErrUnknownModel)
		}
		return m, nil
	})
}

// Model is the offline demo model.
type Model struct {
	name string
	// Delay is slept before each streamed chunk.
	Delay time.Duration
}

// New returns the offline model with the given chunk delay.
func New(delay time.Duration) *Model { return &Model{name: "offline/demo", Delay: delay} }

// Name implements llm.Model.
func (m *Model) Name() string { return m.name }

// Generate implements llm.Model.
func (m *Model) Generate(ctx context.Context, req *llm.Request, onDelta func(llm.Delta)) (*llm.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	msg := llm.Message{Role: llm.RoleAssistant}
	var text string
	stop := "stop"
	if calls := m.toolCalls(req); len(calls) > 0 {
		for i := range calls {
			msg.Parts = append(msg.Parts, llm.Part{Type: llm.PartToolCall, ToolCall: &calls[i]})
		}
		stop = "tool_calls"
	} else {
		text = answer(req)
	}
	if text != "" {
		for _, chunk := range chunks(text) {
			if m.Delay > 0 {
				t := time.NewTimer(m.Delay)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil, ctx.Err()
				case <-t.C:
				}
			} else if err := ctx.Err(); err != nil {
				return nil, err
			}
			if onDelta != nil {
				onDelta(llm.Delta{Text: chunk})
			}
		}
		msg.Parts = append([]llm.Part{llm.TextPart(text)}, msg.Parts...)
	}
	return &llm.Response{Message: msg, Usage: usage(req, msg), StopReason: stop}, nil
}

// chunks splits text into word-sized pieces that concatenate back to text.
func chunks(text string) []string {
	var out []string
	start := 0
	for i := 1; i < len(text); i++ {
		if text[i-1] == ' ' && text[i] != ' ' {
			out = append(out, text[start:i])
			start = i
		}
	}
	return append(out, text[start:])
}

// usage estimates tokens as one per four bytes, deterministically.
func usage(req *llm.Request, out llm.Message) llm.Usage {
	n := len(req.System)
	for _, m := range req.Messages {
		n += partsLen(m.Parts)
	}
	for _, t := range req.Tools {
		n += len(t.Name) + len(t.Description) + len(t.Parameters)
	}
	return llm.Usage{Input: int64(n+3) / 4, Output: int64(partsLen(out.Parts)+3) / 4}
}

func partsLen(parts []llm.Part) int {
	n := 0
	for _, p := range parts {
		n += len(p.Text)
		if p.ToolCall != nil {
			n += len(p.ToolCall.Name) + len(p.ToolCall.Args)
		}
		if p.ToolResult != nil {
			n += len(p.ToolResult.Content)
		}
		if p.Image != nil {
			n += 340 // a small image's worth of tokens
		}
	}
	return n
}

var triggerWords = regexp.MustCompile(`(?i)\b(use|using|call|calling|run|invoke|tool)\b`)

// toolCalls returns the calls the last user message asks for, if it is the
// newest message; after tool results the model answers instead.
func (m *Model) toolCalls(req *llm.Request) []llm.ToolCall {
	if len(req.Messages) == 0 || len(req.Tools) == 0 {
		return nil
	}
	last := req.Messages[len(req.Messages)-1]
	if last.Role != llm.RoleUser {
		return nil
	}
	prompt := last.Text()
	if !triggerWords.MatchString(prompt) {
		return nil
	}
	type hit struct {
		pos  int
		spec llm.ToolSpec
	}
	var hits []hit
	for _, t := range req.Tools {
		for _, pos := range wordIndexes(prompt, t.Name) {
			hits = append(hits, hit{pos, t})
		}
	}
	// Call tools in the order the user named them.
	slices.SortStableFunc(hits, func(a, b hit) int { return a.pos - b.pos })
	// Each tool is called once, where it is first named outside another
	// tool's JSON arguments ("use bash {"command": "grep x"}" calls bash
	// only).
	kept := hits[:0]
	skipUntil := 0
	called := map[string]bool{}
	for _, h := range hits {
		if h.pos < skipUntil || called[h.spec.Name] {
			continue
		}
		called[h.spec.Name] = true
		kept = append(kept, h)
		if end := jsonEnd(prompt, h.pos+len(h.spec.Name)); end > 0 {
			skipUntil = end
		}
	}
	hits = kept
	turn := 0
	for _, msg := range req.Messages {
		if msg.Role == llm.RoleAssistant {
			turn++
		}
	}
	calls := make([]llm.ToolCall, 0, len(hits))
	for i, h := range hits {
		seg := prompt[h.pos+len(h.spec.Name):]
		if i+1 < len(hits) {
			seg = prompt[h.pos+len(h.spec.Name) : hits[i+1].pos]
		}
		calls = append(calls, llm.ToolCall{
			ID:   fmt.Sprintf("call_%d_%d", turn+1, i+1),
			Name: h.spec.Name,
			Args: deriveArgs(h.spec.Parameters, seg, prompt),
		})
	}
	return calls
}

// jsonEnd returns where a JSON object that starts s[from:] (after spaces
// and a colon) ends, or 0 when none does.
func jsonEnd(s string, from int) int {
	rest := strings.TrimLeft(s[from:], " \t\n:")
	if !strings.HasPrefix(rest, "{") {
		return 0
	}
	start := len(s) - len(rest)
	dec := json.NewDecoder(strings.NewReader(rest))
	var obj map[string]any
	if dec.Decode(&obj) != nil {
		return 0
	}
	return start + int(dec.InputOffset())
}

// wordIndexes finds name in s as a whole word, case-insensitively, and
// returns every position.
func wordIndexes(s, name string) []int {
	var out []int
	ls, ln := strings.ToLower(s), strings.ToLower(name)
	if ln == "" {
		return nil
	}
	for off := 0; ; {
		i := strings.Index(ls[off:], ln)
		if i < 0 {
			return out
		}
		i += off
		end := i + len(ln)
		if (i == 0 || !isWord(rune(ls[i-1]))) && (end == len(ls) || !isWord(rune(ls[end]))) {
			out = append(out, i)
		}
		off = i + 1
	}
}

func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

var (
	backticks = regexp.MustCompile("`([^`]+)`")
	dquotes   = regexp.MustCompile(`"([^"]*)"`)
	squotes   = regexp.MustCompile(`(?:^|\s)'([^']+)'`)
	numbers   = regexp.MustCompile(`-?\d+(?:\.\d+)?`)
)

// deriveArgs builds tool arguments from the user's words: a JSON object in
// the segment after the tool's name is used as is; otherwise each property of
// the schema is filled from the prompt (strings from `code`, "quotes" or the
// remaining words, numbers in order).
func deriveArgs(schema json.RawMessage, seg, prompt string) json.RawMessage {
	if i := strings.IndexByte(seg, '{'); i >= 0 {
		dec := json.NewDecoder(strings.NewReader(seg[i:]))
		var obj map[string]any
		if dec.Decode(&obj) == nil {
			b, _ := json.Marshal(obj)
			return b
		}
	}
	var s struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	_ = json.Unmarshal(schema, &s)
	strs := quoted(seg)
	if len(strs) == 0 {
		strs = quoted(prompt)
	}
	if len(strs) == 0 {
		if rest := strings.TrimSpace(strings.TrimLeft(seg, " :,-")); rest != "" {
			strs = []string{trimFiller(rest)}
		}
	}
	// Numbers inside quoted text belong to that text ("`sleep 2`" is no
	// timeout of 2); only the prompt's other numbers fill number fields.
	nums := numbers.FindAllString(unquoted(seg), -1)
	fromPrompt := false
	if len(nums) == 0 {
		nums, fromPrompt = numbers.FindAllString(unquoted(prompt), -1), true
	}
	args := map[string]any{}
	// Required properties first, in schema order, then optional ones only
	// while there is input left for them.
	order := append([]string(nil), s.Required...)
	for name := range s.Properties {
		if !contains(order, name) {
			order = append(order, name)
		}
	}
	required := len(s.Required)
	for i, name := range order {
		typ := typeOf(s.Properties[name].Type)
		switch typ {
		case "string":
			if len(strs) > 0 {
				args[name] = strs[0]
				strs = strs[1:]
			} else if i < required {
				args[name] = ""
			}
		case "integer", "number":
			if len(nums) > 0 && (i < required || !fromPrompt) {
				f, _ := strconv.ParseFloat(nums[0], 64)
				nums = nums[1:]
				if typ == "integer" {
					args[name] = int64(f)
				} else {
					args[name] = f
				}
			} else if i < required {
				args[name] = 0
			}
		case "boolean":
			if i < required {
				args[name] = false
			}
		case "array":
			if i < required {
				args[name] = []any{}
			}
		case "object":
			if i < required {
				args[name] = map[string]any{}
			}
		}
	}
	b, _ := json.Marshal(args)
	return b
}

func typeOf(t any) string {
	switch v := t.(type) {
	case string:
		return v
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s != "null" {
				return s
			}
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// unquoted is s without its quoted parts.
func unquoted(s string) string {
	for _, re := range []*regexp.Regexp{backticks, dquotes, squotes} {
		s = re.ReplaceAllString(s, " ")
	}
	return s
}

func quoted(s string) []string {
	var out []string
	for _, re := range []*regexp.Regexp{backticks, dquotes, squotes} {
		for _, m := range re.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

var filler = regexp.MustCompile(`(?i)^(?:the\s+)?(?:tool\s+)?(?:to|on|with|for|about|of)?\s*`)

func trimFiller(s string) string {
	s = filler.ReplaceAllString(s, "")
	return strings.TrimRight(strings.TrimSpace(s), ".!?")
}
