package coderuntime

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/coding"
)

func TestPromptBusyIdleHistory(t *testing.T) {
	t.Parallel()
	rg := newRig(t, func(c *Config) { c.Model = "offline/slow" })
	ctx := ctxT(t)
	s, err := rg.c.Send(ctx, "", "Build a REST API\nwith users")
	if err != nil || !strings.HasPrefix(s.SessionID, "ses_") || s.Queued {
		t.Fatalf("send: %+v %v", s, err)
	}
	st, err := rg.c.RuntimeStatus(ctx)
	if err != nil || !st.Busy || len(st.Sessions) != 1 || st.Sessions[0].ID != s.SessionID || st.Sessions[0].Title != nil || !st.Sessions[0].Busy {
		t.Fatalf("status while running: %+v %v", st, err)
	}
	rg.waitIdle(t)
	st, _ = rg.c.RuntimeStatus(ctx)
	if st.Busy || st.Sessions[0].Title == nil || *st.Sessions[0].Title != "Build a REST API" {
		t.Fatalf("status after the turn: %+v", st)
	}

	h := rg.history(t, s.SessionID)
	if h.SessionID != s.SessionID || len(h.Messages) != 2 {
		t.Fatalf("history: %+v", h)
	}
	u, a := h.Messages[0], h.Messages[1]
	if u.Info.Role != "user" || u.Info.Parts[0].Type != "text" || u.Info.Parts[0].Text != "Build a REST API\nwith users" || u.Info.Tokens != nil {
		t.Fatalf("user message: %+v", u)
	}
	if a.Info.Role != "assistant" || !strings.HasPrefix(a.Info.Parts[0].Text, "[offline demo model]") ||
		a.Info.Time == nil || a.Info.Time.Created == 0 || a.Info.Time.Completed < a.Info.Time.Created || a.Info.Time.Created > 1e11 ||
		a.Info.Tokens == nil || a.Info.Tokens.Total == 0 || a.Info.Tokens.Total != a.Info.Tokens.Input+a.Info.Tokens.Output {
		t.Fatalf("assistant message: %+v", a.Info)
	}
	if h.Usage.Tokens != *a.Info.Tokens {
		t.Fatalf("usage %+v, want the one step's %+v", h.Usage, *a.Info.Tokens)
	}

	// The exact JSON keys of the seed.
	code, raw := rg.raw(t, "GET", "/control/messages?sessionId="+s.SessionID, "")
	if code != 200 {
		t.Fatal(code, raw)
	}
	msgs := raw["messages"].([]any)
	info := msgs[1].(map[string]any)["info"].(map[string]any)
	tok := info["tokens"].(map[string]any)
	for _, k := range []string{"total", "input", "output", "reasoning"} {
		if _, ok := tok[k]; !ok {
			t.Fatalf("tokens lacks %q: %v", k, tok)
		}
	}
	if c := tok["cache"].(map[string]any); c["read"] == nil || c["write"] == nil {
		t.Fatalf("cache: %v", c)
	}
	if _, ok := info["cost"]; !ok {
		t.Fatalf("no cost: %v", info)
	}
	if _, ok := raw["usage"].(map[string]any)["tokens"]; !ok {
		t.Fatalf("usage: %v", raw["usage"])
	}

	all, err := rg.c.AllMessages(ctx)
	if err != nil || len(all.Sessions) != 1 || all.Sessions[0].Title == nil || len(all.Sessions[0].Messages) != 2 {
		t.Fatalf("all messages: %+v %v", all, err)
	}
	// A follow-up to the same session.
	rg.send(t, s.SessionID, "and add tests")
	rg.waitIdle(t)
	if h := rg.history(t, s.SessionID); len(h.Messages) != 4 || h.Messages[2].Info.Parts[0].Text != "and add tests" {
		t.Fatalf("follow-up: %+v", h.Messages)
	}
}

func TestUsageSumsEveryStep(t *testing.T) {
	t.Parallel()
	rg := newRig(t, nil)
	res := rg.send(t, "", `use list "."`) // list runs without approval: two model steps
	rg.waitIdle(t)
	h := rg.history(t, res.SessionID)
	if len(h.Messages) != 3 {
		t.Fatalf("history: %+v", h.Messages)
	}
	tp := toolParts(h)
	if len(tp) != 1 || tp[0].Tool != "list" || tp[0].State.Status != "completed" {
		t.Fatalf("tool parts: %+v", tp)
	}
	var want Usage
	for _, m := range h.Messages[1:] {
		want.add(*m.Info.Cost, *m.Info.Tokens)
	}
	if h.Usage != want || want.Tokens.Input <= h.Messages[1].Info.Tokens.Input {
		t.Fatalf("usage %+v, want the sum of both steps %+v", h.Usage, want)
	}
	rg.send(t, "", "hello again")
	rg.waitIdle(t)
	rep, err := rg.c.Usage(ctxT(t))
	if err != nil || len(rep.Sessions) != 2 || rep.Sessions[0].Tokens != want.Tokens {
		t.Fatalf("usage report: %+v %v", rep, err)
	}
	if rep.TotalTokens.Total != rep.Sessions[0].Tokens.Total+rep.Sessions[1].Tokens.Total {
		t.Fatalf("totals: %+v", rep)
	}
}

func TestPermissionReplies(t *testing.T) {
	t.Parallel()
	rg := newRig(t, nil)
	ctx := ctxT(t)

	// once
	res := rg.send(t, "", `run bash "echo hello"`)
	sid := res.SessionID
	p := rg.pendingPermission(t)
	if p.SessionID != sid || p.Permission != "bash" || len(p.Patterns) != 1 || p.Patterns[0] != "echo hello" ||
		p.Always || p.Tool.CallID == "" || !strings.HasPrefix(p.Tool.MessageID, "msg_") || !strings.HasPrefix(p.ID, "perm_") {
		t.Fatalf("permission: %+v", p)
	}
	if st, _ := rg.c.RuntimeStatus(ctx); !st.Busy {
		t.Fatal("not busy while waiting for a person")
	}
	if err := rg.c.ReplyPermission(ctx, p.ID, coding.Reply{Reply: "maybe"}); apiStatus(err) != 400 {
		t.Fatalf("bad reply: %v", err)
	}
	code, body := rg.raw(t, "POST", "/control/permissions/"+p.ID+"/reply", `{"reply":"once"}`)
	if code != 200 || body["replied"] != true || body["reply"] != "once" {
		t.Fatalf("reply: %d %v", code, body)
	}
	if err := rg.c.ReplyPermission(ctx, p.ID, coding.Reply{Reply: "once"}); apiStatus(err) != 409 {
		t.Fatalf("second reply: %v", err)
	}
	if err := rg.c.ReplyPermission(ctx, "perm_nope", coding.Reply{Reply: "once"}); apiStatus(err) != 404 {
		t.Fatalf("unknown id: %v", err)
	}
	rg.waitIdle(t)
	tp := toolParts(rg.history(t, sid))
	if len(tp) != 1 || tp[0].State.Status != "completed" || !strings.Contains(tp[0].State.Output, "hello") {
		t.Fatalf("after once: %+v", tp)
	}

	// always: asked once, then remembered
	rg.send(t, sid, `run bash "echo again"`)
	p = rg.pendingPermission(t)
	if err := rg.c.ReplyPermission(ctx, p.ID, coding.Reply{Reply: coding.ReplyAlways}); err != nil {
		t.Fatal(err)
	}
	rg.waitIdle(t)
	rg.send(t, sid, `run bash "echo again"`)
	rg.waitIdle(t)
	tp = toolParts(rg.history(t, sid))
	if len(tp) != 3 || tp[2].State.Status != "completed" || !strings.Contains(tp[2].State.Output, "again") {
		t.Fatalf("after always: %+v", tp)
	}

	// reject with a message: the agent carries on with the feedback
	rg.send(t, sid, `run bash "rm -rf build"`)
	p = rg.pendingPermission(t)
	if err := rg.c.ReplyPermission(ctx, p.ID, coding.Reply{Reply: coding.ReplyReject, Message: "keep the build dir"}); err != nil {
		t.Fatal(err)
	}
	rg.waitIdle(t)
	h := rg.history(t, sid)
	tp = toolParts(h)
	last := h.Messages[len(h.Messages)-1]
	if tp[3].State.Status != "error" || !strings.Contains(tp[3].State.Error, "keep the build dir") || len(last.Info.Parts) == 0 || last.Info.Parts[0].Type != "text" {
		t.Fatalf("reject with feedback: %+v / last %+v", tp[3], last)
	}

	// reject without a message: the turn ends. The session is free before
	// the last turn's status event is stored (engine.TurnEnded), so that
	// event may still reach this stream; only a status after this turn's
	// permission counts.
	evs := rg.collect(t, sid)
	rg.send(t, sid, `run bash "rm -rf dist"`)
	p = rg.pendingPermission(t)
	asked := rg.until(t, evs, "permission", p.ID)
	if err := rg.c.ReplyPermission(ctx, p.ID, coding.Reply{Reply: coding.ReplyReject}); err != nil {
		t.Fatal(err)
	}
	rg.waitIdle(t)
	h = rg.history(t, sid)
	tp = toolParts(h)
	if tp[4].State.Status != "error" || !strings.Contains(tp[4].State.Error, "rejected") {
		t.Fatalf("reject: %+v", tp[4])
	}
	if last := h.Messages[len(h.Messages)-1]; last.Info.Parts[0].Type != "tool" {
		t.Fatalf("the turn went on after a plain rejection: %+v", last)
	}
	ev := evs.until(t, func(e Event) bool {
		return e.ID > asked.ID && e.Type == "status" && strings.Contains(string(e.Data), `"result"`)
	})
	if !strings.Contains(string(ev.Data), `"result":"rejected"`) {
		t.Fatalf("status event: %s", ev.Data)
	}
}

func TestQuestions(t *testing.T) {
	t.Parallel()
	rg := newRig(t, nil)
	ctx := ctxT(t)
	res := rg.send(t, "", `use question {"questions":[{"question":"Which approach?","header":"Approach","options":[{"label":"Simple","description":"quick"},{"label":"Full"}]}]}`)
	var q coding.PendingQuestion
	rg.await(t, "a question", func() bool {
		qs, err := rg.c.Questions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(qs) == 1 {
			q = qs[0]
		}
		return len(qs) == 1
	})
	if !strings.HasPrefix(q.ID, "q_") || q.SessionID != res.SessionID || len(q.Questions) != 1 || q.Questions[0].Options[0].Label != "Simple" {
		t.Fatalf("question: %+v", q)
	}
	code, raw := rg.raw(t, "GET", "/control/questions", "")
	qq := raw["questions"].([]any)[0].(map[string]any)["questions"].([]any)[0].(map[string]any)
	if code != 200 || qq["multiSelect"] != false || qq["header"] != "Approach" {
		t.Fatalf("listing: %v", raw)
	}
	for _, bad := range []string{`{}`, `{"answers":"Simple"}`, `{"answers":[["Simple","Full"]]}`, `{"answers":[["a"],["b"]]}`} {
		if code, body := rg.raw(t, "POST", "/control/questions/"+q.ID, bad); code != 400 {
			t.Fatalf("%s: %d %v", bad, code, body)
		}
	}
	if err := rg.c.ReplyQuestion(ctx, q.ID, [][]string{{"Simple"}}); err != nil {
		t.Fatal(err)
	}
	if err := rg.c.ReplyQuestion(ctx, q.ID, [][]string{{"Simple"}}); apiStatus(err) != 409 {
		t.Fatalf("second reply: %v", err)
	}
	if err := rg.c.ReplyQuestion(ctx, "q_nope", [][]string{{"Simple"}}); apiStatus(err) != 404 {
		t.Fatalf("unknown: %v", err)
	}
	rg.waitIdle(t)
	tp := toolParts(rg.history(t, res.SessionID))
	if len(tp) != 1 || tp[0].State.Status != "completed" || !strings.Contains(tp[0].State.Output, `"Simple"`) {
		t.Fatalf("answer: %+v", tp)
	}

	// multi-select, two questions
	rg.send(t, res.SessionID, `use question {"questions":[{"question":"Which parts?","options":[{"label":"Auth"},{"label":"Tests"},{"label":"Docs"}],"multiSelect":true},{"question":"Deploy?","options":[{"label":"Yes"},{"label":"No"}]}]}`)
	rg.await(t, "the second question", func() bool {
		qs, _ := rg.c.Questions(ctx)
		if len(qs) == 1 {
			q = qs[0]
		}
		return len(qs) == 1
	})
	if err := rg.c.ReplyQuestion(ctx, q.ID, [][]string{{"Auth", "Tests"}, {"No"}}); err != nil {
		t.Fatal(err)
	}
	rg.waitIdle(t)
	tp = toolParts(rg.history(t, res.SessionID))
	if out := tp[1].State.Output; !strings.Contains(out, `"Auth", "Tests"`) || !strings.Contains(out, `Deploy? → "No"`) {
		t.Fatalf("multi-select answer: %q", out)
	}
}

func TestAbort(t *testing.T) {
	t.Parallel()
	rg := newRig(t, func(c *Config) { c.Model = "offline/slow" })
	ctx := ctxT(t)
	res := rg.send(t, "", "tell me a long story")
	rg.send(t, res.SessionID, "and another") // queued behind it, discarded by abort
	evs := rg.collect(t, res.SessionID)
	evs.wait(t, "text to stream", func() bool {
		_, ok := evs.find(func(e Event) bool { return e.Type == "message.delta" })
		return ok
	})
	code, body := rg.raw(t, "POST", "/control/abort", `{"sessionId":"`+res.SessionID+`"}`)
	if code != 200 || body["aborted"] != true || body["sessionId"] != res.SessionID {
		t.Fatalf("abort: %d %v", code, body)
	}
	if st, _ := rg.c.RuntimeStatus(ctx); st.Busy || st.Sessions[0].Busy {
		t.Fatalf("busy after abort: %+v", st)
	}
	h := rg.history(t, res.SessionID)
	if len(h.Messages) > 2 || h.Messages[0].Info.Parts[0].Text != "tell me a long story" || !h.Interrupted {
		t.Fatalf("history after abort (interrupted %v): %+v", h.Interrupted, h.Messages)
	}
	evs.until(t, func(e Event) bool {
		return e.Type == "status" && strings.Contains(string(e.Data), `"result":"aborted"`)
	})
	// It takes new messages at once.
	rg.send(t, res.SessionID, "hi")
	rg.waitIdle(t)
	if h := rg.history(t, res.SessionID); h.Messages[len(h.Messages)-2].Info.Parts[0].Text != "hi" || h.Interrupted {
		t.Fatalf("after abort (interrupted %v): %+v", h.Interrupted, h.Messages)
	}
	if code, _ := rg.raw(t, "POST", "/control/abort", `{"sessionId":"ses_nope"}`); code != 404 {
		t.Fatalf("unknown session: %d", code)
	}

	// Abort all while a permission is pending: it is cancelled.
	rg2 := newRig(t, nil)
	r2 := rg2.send(t, "", `run bash "echo x"`)
	p := rg2.pendingPermission(t)
	ids, err := rg2.c.AbortAll(ctx)
	if err != nil || len(ids) != 1 || ids[0] != r2.SessionID {
		t.Fatalf("abort all: %v %v", ids, err)
	}
	if ps, _ := rg2.c.Permissions(ctx); len(ps) != 0 {
		t.Fatalf("still pending: %+v", ps)
	}
	if err := rg2.c.ReplyPermission(ctx, p.ID, coding.Reply{Reply: "once"}); apiStatus(err) != 409 {
		t.Fatalf("reply after abort: %v", err)
	}
	if code, body := rg2.raw(t, "POST", "/control/abort", ""); code != 200 || len(body["aborted"].([]any)) != 0 {
		t.Fatalf("abort all when idle: %d %v", code, body)
	}
}

func TestQueue(t *testing.T) {
	t.Parallel()
	rg := newRig(t, func(c *Config) { c.Model = "offline/slow" })
	first := rg.send(t, "", "first")
	second := rg.send(t, first.SessionID, "second")
	third := rg.send(t, first.SessionID, "third")
	if first.Queued || !second.Queued || !third.Queued {
		t.Fatalf("queued flags: %v %v %v", first.Queued, second.Queued, third.Queued)
	}
	rg.waitIdle(t)
	h := rg.history(t, first.SessionID)
	var users []string
	for i, m := range h.Messages {
		if m.Info.Role == "user" {
			users = append(users, m.Info.Parts[0].Text)
			if h.Messages[i+1].Info.Role != "assistant" {
				t.Fatalf("turns interleaved: %+v", h.Messages)
			}
		}
	}
	if strings.Join(users, ",") != "first,second,third" || len(h.Messages) != 6 || h.Messages[2].ID != second.MessageID {
		t.Fatalf("history: %+v", h.Messages)
	}
	// An idle session's conversation is not kept in memory.
	rg.await(t, "the idle session to leave memory", func() bool { return rg.rt.eng.LiveSessions() == 0 })
}

func TestAuthAndErrors(t *testing.T) {
	t.Parallel()
	rg := newRig(t, nil)
	resp, err := http.Get(rg.srv.URL + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, auth := range []string{"", "Bearer wrong", testToken} {
		req, _ := http.NewRequest("GET", rg.srv.URL+"/control/status", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 401 || body["error"] == "" {
			t.Fatalf("auth %q: %d %v", auth, resp.StatusCode, body)
		}
	}
	bad := NewClient(rg.srv.URL, "nope")
	if _, err := bad.Send(context.Background(), "", "hi"); apiStatus(err) != 401 {
		t.Fatalf("bad token: %v", err)
	}
	cases := []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/control/messages", `{"message": ""}`, 400},
		{"POST", "/control/messages", `{"message": 3}`, 400},
		{"POST", "/control/messages", `not json`, 400},
		{"POST", "/control/messages", `[1]`, 400},
		{"POST", "/control/messages", `{"message": "hi", "sessionId": "ses_nope"}`, 404},
		{"GET", "/control/messages?sessionId=ses_nope", ``, 404},
		{"POST", "/control/permissions/perm_x", `{"reply":"once"}`, 404},
		{"POST", "/control/questions/q_x", `{"answers":[["a"]]}`, 404},
		{"GET", "/control/nothing", ``, 404},
	}
	for _, c := range cases {
		if code, body := rg.raw(t, c.method, c.path, c.body); code != c.want || body["error"] == nil {
			t.Errorf("%s %s %s: %d %v, want %d", c.method, c.path, c.body, code, body, c.want)
		}
	}
}

func TestHiddenPromptIsNotShown(t *testing.T) {
	t.Parallel()
	rg := newRig(t, func(c *Config) { c.HiddenPrompt = "Always answer in French." })
	if !strings.Contains(rg.rt.ag.SystemPrompt(), "Always answer in French.") {
		t.Fatal("the hidden prompt is not in the system prompt")
	}
	res := rg.send(t, "", "hello")
	rg.waitIdle(t)
	b, _ := json.Marshal(rg.history(t, res.SessionID))
	if strings.Contains(string(b), "French") {
		t.Fatalf("the hidden prompt shows: %s", b)
	}
}

// TestAlwaysForOneSession: a reply "always" with scope "session" (what
// the platform sends for a session page) is remembered for that session
// only, across a restart; another session is still asked.
func TestAlwaysForOneSession(t *testing.T) {
	t.Parallel()
	rg := newRig(t, nil)
	ctx := ctxT(t)
	a := rg.send(t, "", `run bash "echo scoped"`)
	p := rg.pendingPermission(t)
	if code, body := rg.raw(t, "POST", "/control/permissions/"+p.ID, `{"reply":"always","scope":"everyone"}`); code != 400 {
		t.Fatalf("a bad scope: %d %v", code, body)
	}
	if err := rg.c.ReplyPermission(ctx, p.ID, coding.Reply{Reply: coding.ReplyAlways, Scope: coding.ScopeSession}); err != nil {
		t.Fatal(err)
	}
	rg.waitIdle(t)
	rg.stop()
	rg = startRig(t, rg.cfg)
	rg.send(t, a.SessionID, `run bash "echo scoped"`)
	rg.waitIdle(t)
	if tp := toolParts(rg.history(t, a.SessionID)); len(tp) != 2 || tp[1].State.Status != "completed" {
		t.Fatalf("the session's always after a restart: %+v", tp)
	}
	b := rg.send(t, "", `run bash "echo scoped"`)
	if p := rg.pendingPermission(t); p.SessionID != b.SessionID {
		t.Fatalf("pending: %+v", p)
	}
}

// TestWorkersFromEnv: AGENTHOST_WORKERS bounds the runtime's concurrent
// turns; a value that is not a positive number refuses to start.
func TestWorkersFromEnv(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		value string
		want  int
		ok    bool
	}{{"", 0, true}, {"2", 2, true}, {"0", 0, false}, {"many", 0, false}} {
		s, err := FromEnv(func(k string) string {
			switch k {
			case "AGENTHOST_WORKERS":
				return c.value
			case "AGENTHOST_CONTROL_TOKEN":
				return "x"
			}
			return ""
		}, t.TempDir())
		if (err == nil) != c.ok || err == nil && s.Workers != c.want {
			t.Errorf("AGENTHOST_WORKERS=%q: %d %v", c.value, s.Workers, err)
		}
	}
}
