package coding

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/llm"
)

// TestAlwaysForOneSession: an "always" of scope session is remembered in
// the session's rules, never in the agent's, and only that session's
// approver honours it; without session rules it counts as "once".
func TestAlwaysForOneSession(t *testing.T) {
	h := newHarness(t)
	var sessionSaved []Rule
	approver := func(session *Rules) agent.Approver {
		return NewApprover(ApproverConfig{Rules: h.rules, Session: session, Tools: h.tools, SessionID: "sess_1",
			Ask: func(ctx context.Context, p Permission) (Reply, error) {
				h.mu.Lock()
				h.asked = append(h.asked, p)
				h.mu.Unlock()
				return h.reply(p)
			},
			OnRemember:        func(added []Rule) { h.saved = append(h.saved, added...) },
			OnRememberSession: func(added []Rule) { sessionSaved = append(sessionSaved, added...) },
		})
	}
	h.reply = func(Permission) (Reply, error) { return Reply{Reply: ReplyAlways, Scope: ScopeSession}, nil }
	mine, other := NewSessionRules(), NewSessionRules()
	const cmd = `run bash {"command":"touch a.txt"}`
	h.run(context.Background(), cmd, approver(mine))
	if len(h.saved) != 0 || len(sessionSaved) != 1 || sessionSaved[0] != (Rule{"bash", "touch a.txt", Allow}) {
		t.Fatalf("remembered for the agent %+v, for the session %+v", h.saved, sessionSaved)
	}
	h.run(context.Background(), cmd, approver(mine))
	if len(h.asked) != 1 {
		t.Fatalf("the session asked again after its always (%d asks)", len(h.asked))
	}
	h.run(context.Background(), cmd, approver(other))
	if len(h.asked) != 2 {
		t.Fatal("another session did not ask")
	}
	if act, _ := h.rules.Evaluate("bash", "touch a.txt"); act != Ask {
		t.Fatalf("the agent's rules allow it: %s", act)
	}
	// Nowhere to keep a session's always: nothing is remembered.
	h.run(context.Background(), cmd, approver(nil))
	h.run(context.Background(), cmd, approver(nil))
	if len(h.asked) != 4 || len(h.saved) != 0 {
		t.Fatalf("asked %d, remembered %+v", len(h.asked), h.saved)
	}
	// Reloaded from what was persisted, the session's rules still hold.
	again := NewSessionRules(sessionSaved...)
	if act, _ := h.rules.EvaluateWith(again, "bash", "touch a.txt"); act != Allow {
		t.Fatalf("reloaded session rules: %s", act)
	}
}

// TestPrivateFolders: a session's file tools act in another session's
// private folder only after asking, marked as the organization's to
// approve; list, glob and grep walking from above leave it out.
func TestPrivateFolders(t *testing.T) {
	_, root := newWorkspace(t)
	for _, f := range []string{"uploads/sessions/ses_a/a.csv", "uploads/sessions/ses_b/b.csv", "uploads/shared.csv"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("needle "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tools, err := Tools(root, Options{Private: "uploads/sessions"})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]agent.Tool{}
	for _, tl := range tools {
		byName[tl.Spec().Name] = tl
	}
	ctx := WithSession(context.Background(), "ses_a")
	request := func(tool, args string) Request {
		t.Helper()
		req, ok := byName[tool].(Requester).PermissionRequest(ctx, []byte(args))
		if !ok {
			t.Fatalf("%s %s: no request", tool, args)
		}
		return req
	}
	for _, c := range []struct{ tool, args string }{
		{"read", `{"path":"uploads/sessions/ses_b/b.csv"}`},
		{"write", `{"path":"uploads/sessions/ses_b/x.txt","content":"x"}`},
		{"edit", `{"path":"/workspace/uploads/sessions/ses_b/b.csv","old_string":"needle","new_string":"pin"}`},
		{"list", `{"path":"uploads/sessions/ses_b"}`},
		{"glob", `{"pattern":"*","path":"uploads/sessions/ses_b"}`},
		{"grep", `{"pattern":"needle","path":"uploads/sessions/ses_b"}`},
	} {
		req := request(c.tool, c.args)
		if !req.MustAsk || req.Metadata["organization"] != true || req.Metadata["session"] != "ses_b" {
			t.Errorf("%s %s: %+v", c.tool, c.args, req)
		}
	}
	for _, c := range []struct{ tool, args string }{
		{"read", `{"path":"uploads/sessions/ses_a/a.csv"}`},
		{"read", `{"path":"uploads/shared.csv"}`},
		{"list", `{"path":"uploads/sessions"}`},
	} {
		if req := request(c.tool, c.args); req.MustAsk || req.Metadata["organization"] != nil {
			t.Errorf("%s %s: %+v", c.tool, c.args, req)
		}
	}
	// The rules allow read, but a read in another session's folder asks.
	rules, _ := NewRules()
	approve := NewApprover(ApproverConfig{Rules: rules, Tools: tools, SessionID: "ses_a"})
	d, err := approve(ctx, llm.ToolCall{ID: "c1", Name: "read", Args: []byte(`{"path":"uploads/sessions/ses_b/b.csv"}`)})
	if err != nil || d.Allow || !strings.Contains(d.Feedback, "needs a person's approval") {
		t.Fatalf("read of another session's upload without anybody to ask: %+v %v", d, err)
	}
	call := func(tool, args string) string {
		t.Helper()
		out, err := byName[tool].Call(ctx, []byte(args))
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return out
	}
	for _, c := range []struct{ tool, args string }{
		{"list", `{"path":"uploads","depth":3}`},
		{"glob", `{"pattern":"**/*.csv"}`},
		{"grep", `{"pattern":"needle"}`},
	} {
		out := call(c.tool, c.args)
		if strings.Contains(out, "ses_b") || !strings.Contains(out, "a.csv") || !strings.Contains(out, "shared.csv") {
			t.Errorf("%s from above: %s", c.tool, out)
		}
	}
	// Started in the other folder (the organization approved), the walk
	// shows it.
	if out := call("grep", `{"pattern":"needle","path":"uploads/sessions/ses_b"}`); !strings.Contains(out, "b.csv") {
		t.Errorf("grep in ses_b: %s", out)
	}
}
