package coding

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/llm"
)

// harness runs the offline model with the coding tools and an approver
// wired the way a runtime wires it: the message id comes from the run's
// events, the reply from a person (here a function).
type harness struct {
	t     *testing.T
	root  string
	agent *agent.Agent
	tools []agent.Tool
	rules *Rules
	mu    sync.Mutex
	asked []Permission
	reply func(Permission) (Reply, error)
	saved []Rule
	msgOf map[string]string // call id → id of the assistant message holding it
}

func newHarness(t *testing.T, rules ...Rule) *harness {
	t.Helper()
	_, root := newWorkspace(t)
	tools, err := Tools(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New("coder", agent.WithTools(tools...))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewRules(rules...)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, root: root, agent: a, tools: tools, rules: rs, msgOf: map[string]string{}}
}

func (h *harness) approver(ask bool) agent.Approver {
	n := 0
	cfg := ApproverConfig{
		Rules:      h.rules,
		Tools:      h.tools,
		SessionID:  "sess_1",
		MessageID:  func(callID string) string { return h.msgOf[callID] },
		NewID:      func() string { n++; return fmt.Sprintf("perm_%d", n) },
		OnRemember: func(added []Rule) { h.saved = append(h.saved, added...) },
	}
	if ask {
		cfg.Ask = func(ctx context.Context, p Permission) (Reply, error) {
			h.mu.Lock()
			h.asked = append(h.asked, p)
			h.mu.Unlock()
			return h.reply(p)
		}
	}
	return NewApprover(cfg)
}

func (h *harness) run(ctx context.Context, prompt string, approve agent.Approver) *agent.Result {
	h.t.Helper()
	var res *agent.Result
	for ev := range h.agent.Run(ctx, &agent.Conversation{}, []llm.Message{llm.UserText(prompt)}, agent.WithApprover(approve)) {
		switch {
		case ev.Type == agent.EventMessage && ev.Message.Role == llm.RoleAssistant:
			for _, c := range ev.Message.ToolCalls() {
				h.msgOf[c.ID] = ev.Message.ID
			}
		case ev.Type == agent.EventResult:
			res = ev.Result
		}
	}
	if res == nil {
		h.t.Fatal("no result")
	}
	return res
}

func (h *harness) exists(name string) bool {
	_, err := os.Stat(filepath.Join(h.root, name))
	return err == nil
}

func TestApproverReplies(t *testing.T) {
	tests := []struct {
		name       string
		reply      Reply
		wantStatus agent.Status
		wantText   string
		wantRan    bool
	}{
		{"once", Reply{Reply: ReplyOnce}, agent.StatusCompleted, "[exit code 0]", true},
		{"always", Reply{Reply: ReplyAlways}, agent.StatusCompleted, "[exit code 0]", true},
		{"reject with message", Reply{Reply: ReplyReject, Message: "use the Makefile instead"}, agent.StatusCompleted, "use the Makefile instead", false},
		{"reject without message", Reply{Reply: ReplyReject}, agent.StatusRejected, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.reply = func(Permission) (Reply, error) { return tc.reply, nil }
			res := h.run(context.Background(), `run bash {"command":"touch made.txt","description":"make a file"}`, h.approver(true))
			if res.Status != tc.wantStatus || !strings.Contains(res.Text, tc.wantText) {
				t.Fatalf("result = %s %q (%v)", res.Status, res.Text, res.Err)
			}
			if h.exists("made.txt") != tc.wantRan {
				t.Fatalf("ran = %v, want %v", !tc.wantRan, tc.wantRan)
			}
			if len(h.asked) != 1 {
				t.Fatalf("asked %d times", len(h.asked))
			}
			p := h.asked[0]
			want := Permission{ID: "perm_1", SessionID: "sess_1", Permission: "bash", Patterns: []string{"touch made.txt"},
				Metadata: map[string]any{"command": "touch made.txt", "description": "make a file"},
				Tool:     ToolRef{MessageID: h.msgOf["call_1_1"], CallID: "call_1_1"}}
			if fmt.Sprint(p) != fmt.Sprint(want) || !strings.HasPrefix(p.Tool.MessageID, "msg_") {
				t.Fatalf("permission =\n%+v\nwant\n%+v", p, want)
			}

			// A second identical call is asked about again unless the
			// reply was "always".
			h.reply = func(Permission) (Reply, error) { return Reply{Reply: ReplyOnce}, nil }
			h.run(context.Background(), `run bash {"command":"touch made.txt"}`, h.approver(true))
			wantAsked := 2
			if tc.reply.Reply == ReplyAlways {
				wantAsked = 1
				if len(h.saved) != 1 || h.saved[0] != (Rule{"bash", "touch made.txt", Allow}) {
					t.Fatalf("OnRemember got %+v", h.saved)
				}
			}
			if len(h.asked) != wantAsked {
				t.Fatalf("asked %d times, want %d", len(h.asked), wantAsked)
			}
			// "always" covers that command only.
			h.run(context.Background(), `run bash {"command":"touch other.txt"}`, h.approver(true))
			if len(h.asked) != wantAsked+1 {
				t.Fatalf("another command was not asked about")
			}
		})
	}
}

func TestApproverRules(t *testing.T) {
	tests := []struct {
		name      string
		rules     []Rule
		prompt    string
		wantAsked string // permission asked about, "" for none
		wantText  string
		check     func(h *harness) error
	}{
		{"deny rule", []Rule{{"bash", "rm *", Deny}}, `run bash {"command":"rm README.md"}`, "", `denied by the permission rule bash "rm *"`,
			func(h *harness) error {
				if !h.exists("README.md") {
					return errors.New("README.md removed")
				}
				return nil
			}},
		{"allow rule", []Rule{{"bash", "echo *", Allow}}, `run bash {"command":"echo allowed"}`, "", "allowed", nil},
		{"write md allowed", []Rule{{"write", "*.md", Allow}}, `use write {"path":"docs/new.md","content":"x"}`, "", "Created docs/new.md", nil},
		{"write go asked", []Rule{{"write", "*.md", Allow}}, `use write {"path":"main2.go","content":"package main"}`, "write", "Created main2.go", nil},
		{"read allowed by default", nil, `use read {"path":"README.md"}`, "", "# hello", nil},
		{"edit asked with diff", nil, `use edit {"path":"README.md","old_string":"hello","new_string":"bye"}`, "edit", "Edited README.md", nil},
		{"webfetch asked", nil, `use webfetch {"url":"http://127.0.0.1:1/x"}`, "webfetch", "webfetch tool failed", nil},
		{"escape needs no approval", nil, `use write {"path":"../outside/x","content":"x"}`, "", "outside the workspace", nil},
		{"question allowed", nil, `use question {"questions":[{"question":"Which?","options":[{"label":"A"}]}]}`, "", "no person", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.rules...)
			h.reply = func(Permission) (Reply, error) { return Reply{Reply: ReplyOnce}, nil }
			res := h.run(context.Background(), tc.prompt, h.approver(true))
			if res.Status != agent.StatusCompleted || !strings.Contains(res.Text, tc.wantText) {
				t.Fatalf("result = %s %q (%v)", res.Status, res.Text, res.Err)
			}
			switch {
			case tc.wantAsked == "" && len(h.asked) > 0:
				t.Fatalf("asked %+v", h.asked)
			case tc.wantAsked != "" && (len(h.asked) != 1 || h.asked[0].Permission != tc.wantAsked):
				t.Fatalf("asked %+v, want one %s", h.asked, tc.wantAsked)
			}
			if tc.check != nil {
				if err := tc.check(h); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestApproverMetadata(t *testing.T) {
	h := newHarness(t)
	h.reply = func(Permission) (Reply, error) { return Reply{Reply: ReplyReject, Message: "no"}, nil }
	h.run(context.Background(), `use edit {"path":"README.md","old_string":"hello","new_string":"bye"}`, h.approver(true))
	h.run(context.Background(), `use webfetch {"url":"https://example.com/a?b=c"}`, h.approver(true))
	h.run(context.Background(), `use write {"path":"inside/x.go","content":"package x\n"}`, h.approver(true))
	if len(h.asked) != 3 {
		t.Fatalf("asked %d", len(h.asked))
	}
	edit, fetch, write := h.asked[0], h.asked[1], h.asked[2]
	if edit.Patterns[0] != "README.md" || !strings.Contains(edit.Metadata["diff"].(string), "-# hello\n+# bye\n") {
		t.Errorf("edit request %+v", edit)
	}
	if fetch.Patterns[0] != "https://example.com/a?b=c" || fetch.Metadata["host"] != "example.com" {
		t.Errorf("webfetch request %+v", fetch)
	}
	// The pattern is the resolved path, so rules see through symlinks.
	if write.Patterns[0] != "src/x.go" || write.Metadata["exists"] != false || !strings.Contains(write.Metadata["diff"].(string), "+package x") {
		t.Errorf("write request %+v", write)
	}
	if h.exists("src/x.go") {
		t.Error("rejected write ran")
	}
}

func TestApproverWithoutPerson(t *testing.T) {
	h := newHarness(t)
	res := h.run(context.Background(), `run bash {"command":"touch made.txt"}`, h.approver(false))
	if res.Status != agent.StatusCompleted || !strings.Contains(res.Text, "nobody can approve") || h.exists("made.txt") {
		t.Fatalf("result = %s %q", res.Status, res.Text)
	}
}

// A pending permission blocks the run until the run is cancelled (an
// abort); the run then ends aborted and the tool never runs.
func TestApproverAbortWhilePending(t *testing.T) {
	h := newHarness(t)
	pending := make(chan Permission, 1)
	h.reply = nil
	ctx, cancel := context.WithCancel(context.Background())
	approve := NewApprover(ApproverConfig{Rules: h.rules, Tools: h.tools, Ask: func(ctx context.Context, p Permission) (Reply, error) {
		pending <- p
		<-ctx.Done()
		return Reply{}, ctx.Err()
	}})
	go func() {
		p := <-pending
		if !strings.HasPrefix(p.ID, "perm_") {
			t.Errorf("id %q", p.ID)
		}
		cancel()
	}()
	done := make(chan *agent.Result, 1)
	go func() { done <- h.run(ctx, `run bash {"command":"touch made.txt"}`, approve) }()
	select {
	case res := <-done:
		if res.Status != agent.StatusAborted || h.exists("made.txt") {
			t.Fatalf("result = %s %q", res.Status, res.Text)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not end")
	}
}

func TestReply(t *testing.T) {
	tests := []struct {
		reply Reply
		valid bool
		want  agent.Decision
	}{
		{Reply{Reply: ReplyOnce}, true, agent.Decision{Allow: true}},
		{Reply{Reply: ReplyAlways}, true, agent.Decision{Allow: true}},
		{Reply{Reply: ReplyReject, Message: " why "}, true, agent.Decision{Feedback: "why"}},
		{Reply{Reply: ReplyReject}, true, agent.Decision{}},
		{Reply{Reply: "sometimes"}, false, agent.Decision{}},
		{Reply{}, false, agent.Decision{}},
		{Reply{Reply: ReplyAlways, Scope: ScopeSession}, true, agent.Decision{Allow: true}},
		{Reply{Reply: ReplyAlways, Scope: ScopeAgent}, true, agent.Decision{Allow: true}},
		{Reply{Reply: ReplyAlways, Scope: "everyone"}, false, agent.Decision{}},
	}
	for _, tc := range tests {
		err := tc.reply.Validate()
		if (err == nil) != tc.valid || err != nil && !errors.Is(err, ErrBadReply) {
			t.Errorf("%+v: Validate = %v", tc.reply, err)
		}
		if tc.valid && tc.reply.Decision() != tc.want {
			t.Errorf("%+v: Decision = %+v", tc.reply, tc.reply.Decision())
		}
	}
}
