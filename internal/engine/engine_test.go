package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/internal/store/sqlite"
	"github.com/agenthost/agenthost/llm"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// model answers each call with what reply returns for it; reply may
// block (on ctx) to hold a turn.
type model struct {
	mu          sync.Mutex
	running, hi int
	calls       int
	reply       func(ctx context.Context, req *llm.Request, onDelta func(llm.Delta)) (*llm.Response, error)
}

func (m *model) Name() string { return "test/scripted" }

func (m *model) Generate(ctx context.Context, req *llm.Request, onDelta func(llm.Delta)) (*llm.Response, error) {
	m.mu.Lock()
	m.running++
	m.calls++
	m.hi = max(m.hi, m.running)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running--
		m.mu.Unlock()
	}()
	return m.reply(ctx, req, onDelta)
}

func (m *model) highWater() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hi
}

func text(s string) *llm.Response {
	return &llm.Response{Message: llm.Message{Parts: []llm.Part{llm.TextPart(s)}}, Usage: llm.Usage{Input: 3, Output: 2}}
}

func callTool(id, name, args string) *llm.Response {
	return &llm.Response{Message: llm.Message{Parts: []llm.Part{{Type: llm.PartToolCall,
		ToolCall: &llm.ToolCall{ID: id, Name: name, Args: json.RawMessage(args)}}}}}
}

// lastIsUser reports whether the conversation ends with a user message,
// i.e. the model is asked to start a turn rather than to go on after a
// tool.
func lastIsUser(req *llm.Request) bool {
	return req.Messages[len(req.Messages)-1].Role == llm.RoleUser
}

// echo answers every turn with the text of its user message.
func echo(ctx context.Context, req *llm.Request, _ func(llm.Delta)) (*llm.Response, error) {
	return text("re: " + req.Messages[len(req.Messages)-1].Text()), nil
}

// journal records every happening as an event named after its type.
var journal = JournalFunc(func(h Happening) []store.Event {
	name := reflect.TypeOf(h).Name()
	data := map[string]any{}
	switch h := h.(type) {
	case TurnEnded:
		data["result"], data["busy"], data["recovered"] = string(h.Outcome.Result), h.Busy, h.Recovered
	case RequestResolved:
		data["state"] = h.Request.State
	case MessageAdded:
		data["role"], data["error"] = string(h.Message.Role), h.Error
	case TextDelta:
		data["text"] = h.Text
	}
	b, _ := json.Marshal(data)
	return []store.Event{{Type: name, Data: b}}
})

var act = agent.MustTool("act", "does something", func(ctx context.Context, a struct {
	What string `json:"what"`
}) (string, error) {
	return "did " + a.What, nil
})

type rig struct {
	e  *Engine
	st *sqlite.Store
	m  *model
}

func openStore(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "engine.db"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newRig(t *testing.T, st *sqlite.Store, m *model, tweak func(*Config)) *rig {
	t.Helper()
	if st == nil {
		st = openStore(t, t.TempDir())
	}
	a, err := agent.New("test", agent.WithLLM(m), agent.WithTools(act))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: st, Journal: journal, Agent: func() (*agent.Agent, error) { return a, nil },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ProcessName: "runtime"}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		e.Shutdown(ctx)
		st.Close()
	})
	return &rig{e: e, st: st, m: m}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func userInput(sessionID, text string) Input {
	return Input{SessionID: sessionID, NewSessionID: "ses_" + strings.ReplaceAll(text, " ", "_"), Prompt: text, Attended: true,
		Message: llm.Message{Parts: []llm.Part{llm.TextPart(text)}}}
}

// waitFor waits for the engine's changes until cond holds.
func (r *rig) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := ctxT(t)
	for {
		changed := r.e.Changed()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// idle waits until no session is busy and nothing is held in memory.
func (r *rig) idle(t *testing.T) {
	t.Helper()
	r.waitFor(t, "the engine to be idle", func() bool { return !r.e.AnyBusy() && r.e.LiveSessions() == 0 })
}

func (r *rig) events(t *testing.T, sessionID string) []string {
	t.Helper()
	evs, err := r.st.Events(context.Background(), sessionID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type+string(e.Data))
	}
	return out
}

func (r *rig) texts(t *testing.T, sessionID string) []string {
	t.Helper()
	rows, err := r.e.History(context.Background(), sessionID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, row := range rows {
		var m llm.Message
		if err := json.Unmarshal(row.Data, &m); err != nil {
			t.Fatal(err)
		}
		s := string(m.Role) + ":" + m.Text()
		if row.Error != "" {
			s += " [error: " + row.Error + "]"
		}
		for _, p := range m.Parts {
			if p.ToolResult != nil {
				s += " [" + p.ToolResult.Content + "]"
			}
		}
		out = append(out, s)
	}
	return out
}

func TestQueueRunsInOrderAndEvicts(t *testing.T) {
	release := make(chan struct{})
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		if req.Messages[len(req.Messages)-1].Text() == "first" {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return echo(ctx, req, d)
	}}
	r := newRig(t, nil, m, nil)
	ctx := ctxT(t)
	a, err := r.e.Enqueue(ctx, userInput("", "first"))
	if err != nil || a.Queued || a.SessionID != "ses_first" || !strings.HasPrefix(a.MessageID, "msg_") {
		t.Fatalf("first: %+v %v", a, err)
	}
	var queued []Accepted
	for _, s := range []string{"second", "third"} {
		b, err := r.e.Enqueue(ctx, userInput(a.SessionID, s))
		if err != nil || !b.Queued || b.SessionID != a.SessionID {
			t.Fatalf("%s: %+v %v", s, b, err)
		}
		queued = append(queued, b)
	}
	if _, err := r.e.Enqueue(ctx, userInput("ses_nope", "x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	if !r.e.Busy(a.SessionID) {
		t.Fatal("not busy with a turn running and two queued")
	}
	if _, err := r.e.Start(ctx, userInput(a.SessionID, "now"), nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("Start on a busy session: %v, want ErrBusy", err)
	}
	close(release)
	r.idle(t)
	want := []string{"user:first", "assistant:re: first", "user:second", "assistant:re: second", "user:third", "assistant:re: third"}
	if got := r.texts(t, a.SessionID); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("history:\n%v\nwant\n%v", got, want)
	}
	rows, _ := r.e.History(ctx, a.SessionID)
	if rows[2].ID != queued[0].MessageID {
		t.Fatalf("the queued input's message id %s is not %s", rows[2].ID, queued[0].MessageID)
	}
	// The conversation went with the live session; the next turn reads it
	// back from the store, and the model sees all of it.
	var seen int
	m.reply = func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		seen = len(req.Messages)
		return echo(ctx, req, d)
	}
	if _, err := r.e.Enqueue(ctx, userInput(a.SessionID, "fourth")); err != nil {
		t.Fatal(err)
	}
	r.idle(t)
	if seen != 7 {
		t.Fatalf("the model saw %d messages after the session was evicted, want 7", seen)
	}
	ss, _ := r.e.Sessions(ctx)
	if len(ss) != 1 || ss[0].Busy {
		t.Fatalf("sessions: %+v", ss)
	}
	var ended []string
	for _, e := range r.events(t, a.SessionID) {
		if strings.HasPrefix(e, "TurnEnded") {
			ended = append(ended, e)
		}
	}
	if len(ended) != 4 || !strings.Contains(ended[0], `"busy":true`) || !strings.Contains(ended[2], `"busy":false`) {
		t.Fatalf("turn ends: %v", ended)
	}
}

func TestWorkerBound(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 6)
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return echo(ctx, req, d)
	}}
	r := newRig(t, nil, m, func(c *Config) { c.Workers = 2 })
	ctx := ctxT(t)
	for i := 0; i < 6; i++ {
		if _, err := r.e.Enqueue(ctx, userInput("", fmt.Sprint("s", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Two turns take the workers; the others wait for one. Once both
	// workers are inside the model, let the turns through one at a time.
	<-entered
	<-entered
	for i := 0; i < 6; i++ {
		gate <- struct{}{}
	}
	r.idle(t)
	if hi := m.highWater(); hi != 2 {
		t.Fatalf("%d model calls ran at once, want the bound of 2", hi)
	}
}

func TestStartOverloaded(t *testing.T) {
	gate := make(chan struct{})
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return echo(ctx, req, d)
	}}
	r := newRig(t, nil, m, func(c *Config) { c.Workers, c.Queue = 1, 1 })
	ctx := ctxT(t)
	h, err := r.e.Start(ctx, userInput("s1", "one"), nil)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		h2, err := r.e.Start(ctx, userInput("s2", "two"), nil)
		if err == nil {
			<-h2.Done()
		}
		waiting <- err
	}()
	r.waitFor(t, "the second start to wait", func() bool { return r.e.waiting.Load() == 1 })
	if _, err := r.e.Start(ctx, userInput("s3", "three"), nil); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("third start: %v, want ErrOverloaded", err)
	}
	close(gate)
	<-h.Done()
	if out := h.Outcome(); out.Status != store.StatusDone || out.Text != "re: one" || h.State().Turn != 1 || len(h.State().Messages) != 2 {
		t.Fatalf("outcome: %+v %+v", out, h.State())
	}
	if err := <-waiting; err != nil {
		t.Fatal(err)
	}
	r.idle(t)
}

// approveAll asks a person about every call of act, with a timeout.
func approveAll(timeout time.Duration) func(t *Turn) agent.Approver {
	return func(t *Turn) agent.Approver {
		return func(ctx context.Context, call llm.ToolCall) (agent.Decision, error) {
			b, err := t.Ask(ctx, AskRequest{ID: "perm_" + call.ID, Kind: "permission", CallID: call.ID, Data: json.RawMessage(`{"tool":"act"}`), Timeout: timeout})
			if err != nil {
				return agent.Decision{}, err
			}
			return agent.Decision{Allow: string(b) == `"yes"`}, nil
		}
	}
}

func TestAskAndReply(t *testing.T) {
	n := 0
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		if lastIsUser(req) {
			n++
			return callTool(fmt.Sprint("call_", n), "act", `{"what":"it"}`), nil
		}
		return text("after the tool"), nil
	}}
	r := newRig(t, nil, m, func(c *Config) { c.Approver = approveAll(0) })
	ctx := ctxT(t)
	a, _ := r.e.Enqueue(ctx, userInput("", "go"))
	var pending []store.Request
	r.waitFor(t, "a pending request", func() bool {
		pending, _ = r.e.Pending(ctx, "permission", a.SessionID)
		return len(pending) == 1
	})
	p := pending[0]
	if p.ID != "perm_call_1" || p.CallID != "call_1" || p.SessionID != a.SessionID {
		t.Fatalf("pending: %+v", p)
	}
	if ss, _ := r.e.Session(ctx, a.SessionID); ss.Status != store.StatusWaitingApproval {
		t.Fatalf("status while waiting: %s", ss.Status)
	}
	if err := r.e.Reply(ctx, Answer{Kind: "permission", ID: p.ID, State: "replied", Reply: json.RawMessage(`"yes"`), SessionID: "ses_other"}); !errors.Is(err, ErrUnknownRequest) {
		t.Fatalf("another session's reply: %v", err)
	}
	if err := r.e.Reply(ctx, Answer{Kind: "question", ID: p.ID, State: "answered"}); !errors.Is(err, ErrUnknownRequest) {
		t.Fatalf("wrong kind: %v", err)
	}
	bad := errors.New("bad reply")
	if err := r.e.Reply(ctx, Answer{Kind: "permission", ID: p.ID, State: "replied", Check: func(store.Request) error { return bad }}); !errors.Is(err, bad) {
		t.Fatalf("a failed check: %v", err)
	}
	if err := r.e.Reply(ctx, Answer{Kind: "permission", ID: p.ID, State: "replied", Reply: json.RawMessage(`"yes"`)}); err != nil {
		t.Fatal(err)
	}
	if err := r.e.Reply(ctx, Answer{Kind: "permission", ID: p.ID, State: "replied", Reply: json.RawMessage(`"yes"`)}); !errors.Is(err, ErrNotPending) {
		t.Fatalf("second reply: %v", err)
	}
	r.idle(t)
	if got := r.texts(t, a.SessionID); len(got) != 4 || got[2] != "tool: [did it]" || got[3] != "assistant:after the tool" {
		t.Fatalf("history: %v", got)
	}

	// Abort while a request is pending: it is cancelled, and replying to
	// it is ErrNotPending.
	if _, err := r.e.Enqueue(ctx, userInput(a.SessionID, "again")); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the second request", func() bool {
		pending, _ = r.e.Pending(ctx, "", "")
		return len(pending) == 1
	})
	if err := r.e.Abort(ctx, a.SessionID); err != nil {
		t.Fatal(err)
	}
	if r.e.Busy(a.SessionID) {
		t.Fatal("busy after Abort returned")
	}
	got, _ := r.st.Request(ctx, "permission", pending[0].ID)
	if got.State != StateCancelled {
		t.Fatalf("request after abort: %+v", got)
	}
	if err := r.e.Reply(ctx, Answer{Kind: "permission", ID: got.ID, State: "replied"}); !errors.Is(err, ErrNotPending) {
		t.Fatalf("reply after abort: %v", err)
	}
	r.idle(t)
	evs := strings.Join(r.events(t, a.SessionID), "\n")
	if !strings.Contains(evs, `RequestResolved{"state":"cancelled"}`) || !strings.Contains(evs, `TurnEnded{"busy":false,"recovered":false,"result":"aborted"}`) {
		t.Fatalf("events:\n%s", evs)
	}
	if err := r.e.Abort(ctx, "ses_nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("abort of an unknown session: %v", err)
	}
}

func TestAskTimeoutAndReplyWaiting(t *testing.T) {
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		if lastIsUser(req) {
			return callTool("call_"+req.Messages[len(req.Messages)-1].Text(), "act", `{"what":""}`), nil
		}
		return text("done"), nil
	}}
	timeouts := map[string]time.Duration{}
	r := newRig(t, nil, m, func(c *Config) {
		c.Approver = func(t *Turn) agent.Approver {
			return approveAll(timeouts[t.Data.(string)])(t)
		}
	})
	ctx := ctxT(t)
	timeouts["short"] = time.Millisecond
	in := userInput("s-timeout", "short")
	in.Data, in.Owner = "short", "0xowner"
	h, err := r.e.Start(ctx, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-h.Done()
	if got := r.texts(t, "s-timeout"); len(got) < 3 || !strings.Contains(got[2], "nobody answered within 1ms") {
		t.Fatalf("history after the timeout: %v", got)
	}
	reqs, _ := r.st.Requests(ctx, "permission", StateExpired)
	if len(reqs) != 1 {
		t.Fatalf("expired requests: %+v", reqs)
	}

	in = userInput("s-wait", "long")
	in.Data, in.Owner = "long", "0xowner"
	h, err = r.e.Start(ctx, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the request", func() bool { p, _ := r.e.Pending(ctx, "permission", "s-wait"); return len(p) == 1 })
	if err := r.e.ReplyWaiting(ctx, "s-wait", "0xsomeone-else", "permission", "replied", json.RawMessage(`"yes"`)); !errors.Is(err, ErrNotWaiting) {
		t.Fatalf("another caller's answer: %v", err)
	}
	if err := r.e.ReplyWaiting(ctx, "s-wait", "0xowner", "question", "answered", json.RawMessage(`"yes"`)); !errors.Is(err, ErrNotWaiting) {
		t.Fatalf("an answer of the wrong kind: %v", err)
	}
	if err := r.e.ReplyWaiting(ctx, "s-wait", "0xowner", "permission", "replied", json.RawMessage(`"yes"`)); err != nil {
		t.Fatal(err)
	}
	<-h.Done()
	if err := r.e.ReplyWaiting(ctx, "s-wait", "0xowner", "permission", "replied", nil); !errors.Is(err, ErrNotWaiting) {
		t.Fatalf("an answer after the turn: %v", err)
	}
	if got := r.texts(t, "s-wait"); len(got) != 4 || got[2] != "tool: [did ]" {
		t.Fatalf("history: %v", got)
	}
	r.idle(t)
}

func TestFailedModelCallIsRecorded(t *testing.T) {
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		if req.Messages[len(req.Messages)-1].Text() == "fail" {
			d(llm.Delta{Text: "partial"})
			return nil, &llm.APIError{Provider: "openai", StatusCode: 429, Message: "rate limit reached"}
		}
		return text(fmt.Sprintf("saw %d messages", len(req.Messages))), nil
	}}
	r := newRig(t, nil, m, nil)
	ctx := ctxT(t)
	a, _ := r.e.Enqueue(ctx, userInput("", "fail"))
	r.idle(t)
	got := r.texts(t, a.SessionID)
	if len(got) != 2 || got[0] != "user:fail" || !strings.HasPrefix(got[1], "assistant:partial [error: ") || !strings.Contains(got[1], "rate limit reached") {
		t.Fatalf("history: %v", got)
	}
	ss, _ := r.e.Session(ctx, a.SessionID)
	if ss.Status != store.StatusFailed {
		t.Fatalf("status %s", ss.Status)
	}
	// The record is for people: the model's next turn does not see it.
	r.e.Enqueue(ctx, userInput(a.SessionID, "again"))
	r.idle(t)
	if got := r.texts(t, a.SessionID); got[3] != "assistant:saw 2 messages" {
		t.Fatalf("the model saw the failure record: %v", got)
	}
	evs := strings.Join(r.events(t, a.SessionID), "\n")
	if !strings.Contains(evs, `MessageAdded{"error":"openai: HTTP 429: rate limit reached"`) || !strings.Contains(evs, `"result":"failed"`) {
		t.Fatalf("events:\n%s", evs)
	}
}

func TestTextWindow(t *testing.T) {
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		for _, w := range []string{"a", "b", "c"} {
			d(llm.Delta{Text: w})
		}
		return text("abc"), nil
	}}
	r := newRig(t, nil, m, func(c *Config) { c.TextWindow = time.Hour })
	a, _ := r.e.Enqueue(ctxT(t), userInput("", "hi"))
	r.idle(t)
	var deltas []string
	for _, e := range r.events(t, a.SessionID) {
		if strings.HasPrefix(e, "TextDelta") {
			deltas = append(deltas, e)
		}
	}
	// Gathered, and flushed before the message that follows it.
	if len(deltas) != 1 || deltas[0] != `TextDelta{"text":"abc"}` {
		t.Fatalf("deltas: %v", deltas)
	}
}

// TestRecover finds in the store what a process killed mid-turn leaves:
// a turn running, its tool call waiting for a permission, and an input
// queued behind it.
func TestRecover(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	ctx := context.Background()
	now := time.Now()
	user := llm.Message{ID: "msg_u", Role: llm.RoleUser, Parts: []llm.Part{llm.TextPart("go")}}
	asst := callTool("call_1", "act", `{}`).Message
	asst.ID, asst.Role = "msg_a", llm.RoleAssistant
	queued := llm.Message{ID: "msg_q", Role: llm.RoleUser, Parts: []llm.Part{llm.TextPart("after the crash")}}
	row := store.Session{ID: "ses_1", Status: store.StatusWaitingApproval, Created: now, Updated: now, State: json.RawMessage(`{"turn":0,"iteration":1}`)}
	must := func(b []byte, err error) json.RawMessage {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	_, err := st.Apply(ctx, store.Change{Create: &row,
		Messages: []store.Message{{SessionID: "ses_1", ID: "msg_u", Data: must(json.Marshal(user))}, {SessionID: "ses_1", ID: "msg_a", Data: must(json.Marshal(asst))}},
		Inputs: []store.Input{{ID: "msg_u", SessionID: "ses_1", Data: must(json.Marshal(user)), State: store.InputRunning, Created: now},
			{ID: "msg_q", SessionID: "ses_1", Data: must(json.Marshal(queued)), State: store.InputQueued, Created: now}},
		Requests: []store.Request{{ID: "perm_1", Kind: "permission", SessionID: "ses_1", CallID: "call_1", Data: json.RawMessage(`{}`), State: store.RequestPending, Created: now}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var saw []llm.Message
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		saw = req.Messages
		return text("carrying on"), nil
	}}
	r := newRig(t, st, m, func(c *Config) {
		c.RequestNoun = func(k string) string { return k + " request" }
	})
	r.idle(t)
	got := r.texts(t, "ses_1")
	want := []string{"user:go", "assistant:", "tool: [Error: interrupted: the permission request perm_1 expired unanswered because the runtime restarted; the call did not run]",
		"user:after the crash", "assistant:carrying on"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("history:\n%v\nwant\n%v", got, want)
	}
	// The conversation the model got after the crash is valid: every tool
	// call has its result.
	if len(saw) != 4 || saw[2].Role != llm.RoleTool {
		t.Fatalf("the model saw %+v", saw)
	}
	req, _ := st.Request(ctx, "permission", "perm_1")
	if req.State != StateExpired {
		t.Fatalf("request: %+v", req)
	}
	evs := strings.Join(r.events(t, "ses_1"), "\n")
	for _, w := range []string{`RequestResolved{"state":"expired"}`, `TurnEnded{"busy":true,"recovered":true,"result":"interrupted"}`,
		`TurnEnded{"busy":false,"recovered":false,"result":"completed"}`} {
		if !strings.Contains(evs, w) {
			t.Fatalf("no %s in\n%s", w, evs)
		}
	}
	if in, _ := st.Inputs(ctx, store.InputInterrupted); len(in) != 1 || in[0].ID != "msg_u" {
		t.Fatalf("interrupted inputs: %+v", in)
	}
}

// TestShutdownKeepsQueue stops the engine while a turn runs with an input
// queued behind it: the turn is cut short, its request expires, and the
// queued input runs after the next start.
func TestShutdownKeepsQueue(t *testing.T) {
	dir := t.TempDir()
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		if lastIsUser(req) && req.Messages[len(req.Messages)-1].Text() == "first" {
			return callTool("call_1", "act", `{}`), nil
		}
		return text("ok"), nil
	}}
	st := openStore(t, dir)
	a, err := agent.New("test", agent.WithLLM(m), agent.WithTools(act))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Store: st, Journal: journal, Agent: func() (*agent.Agent, error) { return a, nil }, Approver: approveAll(0),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	first, _ := e.Enqueue(ctx, userInput("", "first"))
	e.Enqueue(ctx, userInput(first.SessionID, "second"))
	r0 := &rig{e: e, st: st}
	r0.waitFor(t, "the request", func() bool { p, _ := e.Pending(ctx, "", ""); return len(p) == 1 })
	stop, cancel := context.WithCancel(context.Background())
	cancel()
	e.Shutdown(stop)
	if _, err := e.Enqueue(ctx, userInput(first.SessionID, "late")); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("enqueue after shutdown: %v", err)
	}
	if e.LiveSessions() != 0 {
		t.Fatalf("%d live sessions after shutdown", e.LiveSessions())
	}
	if q, _ := st.Inputs(ctx, store.InputQueued); len(q) != 1 {
		t.Fatalf("queued after shutdown: %+v", q)
	}
	if p, _ := st.Requests(ctx, "permission", StateExpired); len(p) != 1 {
		t.Fatalf("the request did not expire: %+v", p)
	}
	r := newRig(t, st, m, nil)
	r.idle(t)
	if got := r.texts(t, first.SessionID); len(got) != 5 || got[3] != "user:second" || got[4] != "assistant:ok" {
		t.Fatalf("history after the restart: %v", got)
	}
}

// holdingStore holds the first change carrying a TextDelta in Apply until
// release is closed, telling entered when it does.
type holdingStore struct {
	store.Store
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *holdingStore) Apply(ctx context.Context, c store.Change) ([]store.Event, error) {
	for _, e := range c.Events {
		if e.Type == "TextDelta" {
			s.once.Do(func() {
				close(s.entered)
				<-s.release
			})
			break
		}
	}
	return s.Store.Apply(ctx, c)
}

// Without a text window, text a model writes while the session's previous
// text is being committed is gathered into one delta sent after that
// commit, instead of one queued event per chunk; every character is in
// the log, in order.
func TestTextGathersBehindACommit(t *testing.T) {
	hs := &holdingStore{entered: make(chan struct{}), release: make(chan struct{})}
	var want strings.Builder
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		d(llm.Delta{Text: "x0 "})
		<-hs.entered // the first delta is being committed
		for i := 1; i < 100; i++ {
			d(llm.Delta{Text: fmt.Sprintf("x%d ", i)})
		}
		close(hs.release)
		return text("done"), nil
	}}
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&want, "x%d ", i)
	}
	r := newRig(t, nil, m, func(c *Config) { hs.Store = c.Store; c.Store = hs })
	a, err := r.e.Enqueue(ctxT(t), userInput("", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	r.idle(t)
	var deltas []string
	for _, e := range r.events(t, a.SessionID) {
		if strings.HasPrefix(e, "TextDelta") {
			deltas = append(deltas, e)
		}
	}
	wantDeltas := []string{`TextDelta{"text":"x0 "}`, `TextDelta{"text":"` + want.String() + `"}`}
	if !slices.Equal(deltas, wantDeltas) {
		t.Fatalf("deltas:\n%v\nwant:\n%v", deltas, wantDeltas)
	}
}

// With ReleaseIdle, the engine returns free memory once no session is
// busy, and not while one is.
func TestReleaseIdle(t *testing.T) {
	released := make(chan bool, 16)
	var r *rig
	freeOSMemory = func() { released <- r.e.AnyBusy() }
	t.Cleanup(func() { freeOSMemory = debug.FreeOSMemory })
	hold := make(chan struct{})
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		<-hold
		return text("done"), nil
	}}
	r = newRig(t, nil, m, func(c *Config) { c.ReleaseIdle = time.Millisecond })
	if _, err := r.e.Enqueue(ctxT(t), userInput("", "hi")); err != nil {
		t.Fatal(err)
	}
	close(hold)
	r.idle(t)
	select {
	case busy := <-released:
		if busy {
			t.Fatal("memory released while a session was busy")
		}
	case <-ctxT(t).Done():
		t.Fatal("memory never released after the engine went idle")
	}
}

// countingStore counts the conversation loads (Messages) it serves.
type countingStore struct {
	store.Store
	loads atomic.Int64
}

func (s *countingStore) Messages(ctx context.Context, id string) ([]store.Message, error) {
	s.loads.Add(1)
	return s.Store.Messages(ctx, id)
}

// A live session between turns answers Conversation from memory, equal to
// what the store holds, and the next turn's messages do not show up in a
// state handed out before it.
func TestConversationOfALiveSession(t *testing.T) {
	cs := &countingStore{}
	r := newRig(t, nil, &model{reply: echo}, func(c *Config) { cs.Store = c.Store; c.Store = cs })
	ctx := ctxT(t)
	a, err := r.e.Enqueue(ctx, userInput("", "one"))
	if err != nil {
		t.Fatal(err)
	}
	r.idle(t)
	ss, err := r.e.Session(ctx, a.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := r.e.Conversation(ctx, ss) // not live: loaded
	if err != nil {
		t.Fatal(err)
	}
	if cs.loads.Load() == 0 {
		t.Fatal("an idle session's conversation did not come from the store")
	}
	sub := NewSubscriber()
	if _, err := r.e.Subscribe(ctx, a.SessionID, "", sub, 0); err != nil {
		t.Fatal(err)
	}
	defer r.e.Unsubscribe(sub)
	in := userInput(a.SessionID, "two")
	if _, err := r.e.Enqueue(ctx, in); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the second turn", func() bool { return !r.e.Busy(a.SessionID) && len(r.texts(t, a.SessionID)) == 4 })
	loads := cs.loads.Load()
	mem, err := r.e.Conversation(ctx, ss)
	if err != nil {
		t.Fatal(err)
	}
	if cs.loads.Load() != loads {
		t.Error("a live session's conversation was loaded from the store")
	}
	var got []string
	for _, m := range mem.Messages {
		got = append(got, string(m.Role)+":"+m.Text())
	}
	if want := []string{"user:one", "assistant:re: one", "user:two", "assistant:re: two"}; !slices.Equal(got, want) {
		t.Fatalf("from memory %v, want %v", got, want)
	}
	if mem.Turn != stored.Turn+1 {
		t.Errorf("turn %d from memory, %d before the second turn", mem.Turn, stored.Turn)
	}
	if _, err := r.e.Enqueue(ctx, userInput(a.SessionID, "three")); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the third turn", func() bool { return !r.e.Busy(a.SessionID) && len(r.texts(t, a.SessionID)) == 6 })
	if len(mem.Messages) != 4 || mem.Messages[3].Text() != "re: two" {
		t.Fatalf("a later turn changed a state handed out before it: %d messages", len(mem.Messages))
	}
}

// countingLists counts ListSessions calls.
type countingLists struct {
	store.Store
	lists atomic.Int64
}

func (s *countingLists) ListSessions(ctx context.Context, o store.ListOptions) ([]store.Session, error) {
	s.lists.Add(1)
	return s.Store.ListSessions(ctx, o)
}

// Sessions lists from memory after its first call, and the list stays what
// the store holds as turns create and update sessions (title, error) and
// as expired sessions are deleted.
func TestSessionsKeptInMemory(t *testing.T) {
	cs := &countingLists{}
	fail := false
	m := &model{reply: func(ctx context.Context, req *llm.Request, d func(llm.Delta)) (*llm.Response, error) {
		if fail {
			return nil, errors.New("provider down")
		}
		return echo(ctx, req, d)
	}}
	now := time.Now()
	r := newRig(t, nil, m, func(c *Config) {
		cs.Store = c.Store
		c.Store = cs
		c.Title = func(text string) string { return "about " + text }
		c.ResultTTL = func() time.Duration { return time.Minute }
		c.Now = func() time.Time { return now }
	})
	ctx := ctxT(t)
	fromStore := func() []SessionStatus {
		rows, err := r.st.ListSessions(ctx, store.ListOptions{All: true, OldestFirst: true, Limit: -1})
		if err != nil {
			t.Fatal(err)
		}
		var out []SessionStatus
		for _, row := range rows {
			out = append(out, SessionStatus{ID: row.ID, Title: row.Title, Error: row.Error, Updated: row.Updated})
		}
		return out
	}
	check := func(when string) {
		t.Helper()
		got, err := r.e.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := fromStore()
		if len(got) != len(want) {
			t.Fatalf("%s: listed %d sessions, the store has %d", when, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.ID != w.ID || g.Title != w.Title || g.Error != w.Error || !g.Updated.Equal(w.Updated) || g.Busy {
				t.Fatalf("%s: session %d listed %+v, stored %+v", when, i, g, w)
			}
		}
	}
	check("empty")
	for _, p := range []string{"one", "two"} {
		if _, err := r.e.Enqueue(ctx, userInput("", p)); err != nil {
			t.Fatal(err)
		}
		r.idle(t)
		check("after " + p)
	}
	fail = true
	a, err := r.e.Enqueue(ctx, userInput("", "three"))
	if err != nil {
		t.Fatal(err)
	}
	r.idle(t)
	check("after a failed turn")
	if got, _ := r.e.Sessions(ctx); got[2].ID != a.SessionID || got[2].Error == "" {
		t.Fatalf("the failed session listed as %+v", got[2])
	}
	if n := cs.lists.Load(); n != 1 {
		t.Errorf("the store was listed %d times; want once", n)
	}
	now = now.Add(2 * time.Minute)
	if n, err := r.e.DeleteExpired(ctx, now); err != nil || n != 3 {
		t.Fatalf("deleted %d: %v", n, err)
	}
	check("after deleting the expired sessions")
}
