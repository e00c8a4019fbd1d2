package session_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/web/session"
)

// fakeAPI is a small real HTTP server with the platform's capability API
// for one session (seed 003 bodies, SSE events with ids and replay), and a
// scripted agent:
//
//   - "run bash <cmd>" asks a bash permission, then runs it; "run bash
//     org <cmd>" asks one only the organization may answer;
//   - "fail" fails its model call (the provider's error in the history);
//   - "ask" asks a single-select question, "ask many" a multi-select one;
//   - "slow" streams a long answer slowly (for abort);
//   - anything else is answered "You said: <text>", streamed word by word.
type fakeAPI struct {
	t    *testing.T
	srv  *httptest.Server
	cap  string
	page string // path of the session page

	mu        sync.Mutex
	events    []fakeEvent
	changed   chan struct{} // closed and replaced on every event
	streams   map[int]context.CancelFunc
	nextSt    int
	messages  []map[string]any
	perms     map[string]map[string]any
	questions map[string]map[string]any
	replies   map[string]chan any
	cost      float64
	uploads   map[string]string
	aborted   int
	abortRun  context.CancelFunc
	// pagePerms: the page may reply to permissions (sessionPermissions).
	pagePerms bool
	sseOpens  []string // Last-Event-ID of each /events request
	delay     time.Duration
	// historyGate, when set, holds GET messages until it is closed;
	// historyErr, when set, makes GET messages fail with it (500).
	historyGate chan struct{}
	historyErr  string
}

type fakeEvent struct {
	id   int
	typ  string
	data string
}

// setDelay sets the pause between streamed words.
func (f *fakeAPI) setDelay(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, cap: "cap_secret-123", page: "/a/ag_1/session/ses_1", changed: make(chan struct{}),
		streams: map[int]context.CancelFunc{}, perms: map[string]map[string]any{}, questions: map[string]map[string]any{},
		replies: map[string]chan any{}, uploads: map[string]string{}, delay: 30 * time.Millisecond, pagePerms: true}
	mux := http.NewServeMux()
	mux.Handle("GET "+f.page, session.Handler())
	api := f.page + "/api/"
	handle := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			c := r.Header.Get("X-Session-Capability")
			if c == "" {
				c = r.URL.Query().Get("cap")
			}
			if c != f.cap {
				writeJSON(w, 404, map[string]any{"error": "session not found"})
				return
			}
			h(w, r)
		})
	}
	handle("GET "+api+"messages", f.getMessages)
	handle("POST "+api+"messages", f.postMessage)
	handle("GET "+api+"events", f.getEvents)
	handle("GET "+api+"permissions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"permissions": f.pending(f.perms)})
	})
	handle("GET "+api+"questions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"questions": f.pending(f.questions)})
	})
	handle("POST "+api+"permissions/{id}", f.replyPermission)
	handle("POST "+api+"questions/{id}", f.replyQuestion)
	handle("POST "+api+"files", f.upload)
	handle("POST "+api+"abort", f.abort)
	handle("GET "+api+"usage", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, 200, map[string]any{"agentId": "ag_1", "totalCost": f.cost, "totalTokens": tokens(int(f.cost * 1e5))})
	})
	handle("GET "+api+"status", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		pagePerms := f.pagePerms
		f.mu.Unlock()
		writeJSON(w, 200, map[string]any{"agentId": "ag_1", "sessionId": "ses_1", "status": "RUNNING", "busy": f.isBusy(), "title": "Fake session",
			"sessionPermissions": pagePerms})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.dropStreams()
		f.srv.Close()
	})
	return f
}

// URL is the page's URL with its capability, on host (e.g. "127.0.0.1").
func (f *fakeAPI) URL() string { return f.srv.URL + f.page + "?cap=" + f.cap }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func tokens(n int) map[string]any {
	return map[string]any{"total": n, "input": n / 2, "output": n - n/2, "reasoning": 0, "cache": map[string]any{"read": 0, "write": 0}}
}

func (f *fakeAPI) pending(m map[string]map[string]any) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []any{}
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func (f *fakeAPI) isBusy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.abortRun != nil
}

// emit stores an event and wakes the streams.
func (f *fakeAPI) emit(typ string, data any) {
	b, _ := json.Marshal(data)
	f.mu.Lock()
	f.events = append(f.events, fakeEvent{id: len(f.events) + 1, typ: typ, data: string(b)})
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// dropStreams ends every open event stream, as a dropped connection would.
func (f *fakeAPI) dropStreams() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.streams {
		c()
	}
}

func (f *fakeAPI) getEvents(w http.ResponseWriter, r *http.Request) {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("lastEventId")
	}
	f.mu.Lock()
	f.sseOpens = append(f.sseOpens, last)
	cursor := len(f.events)
	if last != "" {
		cursor, _ = strconv.Atoi(last)
	}
	ctx, cancel := context.WithCancel(r.Context())
	f.nextSt++
	n := f.nextSt
	f.streams[n] = cancel
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.streams, n)
		f.mu.Unlock()
		cancel()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		f.mu.Lock()
		evs := f.events[min(cursor, len(f.events)):]
		ch := f.changed
		f.mu.Unlock()
		for _, e := range evs {
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.id, e.typ, e.data)
			cursor = e.id
		}
		rc.Flush()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

func (f *fakeAPI) getMessages(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	gate, failure := f.historyGate, f.historyErr
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if failure != "" {
		writeJSON(w, 500, map[string]any{"error": failure})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	writeJSON(w, 200, map[string]any{"sessionId": "ses_1", "messages": f.messages, "usage": map[string]any{"cost": f.cost, "tokens": tokens(int(f.cost * 1e5))}})
}

// putMessage stores a message (replacing one with its id) and emits it.
func (f *fakeAPI) putMessage(m map[string]any) {
	f.mu.Lock()
	replaced := false
	for i, x := range f.messages {
		if x["id"] == m["id"] {
			f.messages[i], replaced = m, true
		}
	}
	if !replaced {
		f.messages = append(f.messages, m)
	}
	f.mu.Unlock()
	f.emit("message", map[string]any{"sessionId": "ses_1", "message": m})
}

func msg(id, role string, parts ...map[string]any) map[string]any {
	info := map[string]any{"role": role, "parts": parts}
	if role == "assistant" {
		info["cost"] = 0.0012
		info["tokens"] = tokens(120)
	}
	return map[string]any{"id": id, "info": info}
}

func text(s string) map[string]any { return map[string]any{"type": "text", "text": s} }

func tool(name, callID, status string, input any, output string) map[string]any {
	in, _ := json.Marshal(input)
	st := map[string]any{"status": status, "input": json.RawMessage(in)}
	if output != "" {
		st["output"] = output
	}
	return map[string]any{"type": "tool", "tool": name, "callID": callID, "state": st}
}

func (f *fakeAPI) postMessage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message string `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || strings.TrimSpace(req.Message) == "" {
		writeJSON(w, 400, map[string]any{"error": "message is required"})
		return
	}
	f.mu.Lock()
	n := len(f.messages)
	ctx, cancel := context.WithCancel(context.Background())
	f.abortRun = cancel
	f.mu.Unlock()
	id := fmt.Sprintf("msg_%03d", n+1)
	writeJSON(w, 200, map[string]any{"sessionId": "ses_1", "sent": true, "messageId": id})
	go f.turn(ctx, id, req.Message)
}

func (f *fakeAPI) turn(ctx context.Context, userID, prompt string) {
	f.emit("status", map[string]any{"sessionId": "ses_1", "busy": true, "agentBusy": true})
	f.putMessage(msg(userID, "user", text(prompt)))
	aid := userID + "_a"
	f.mu.Lock()
	delay := f.delay
	f.mu.Unlock()
	result, errMsg := "completed", ""
	defer func() {
		f.mu.Lock()
		f.cost += 0.0012
		f.abortRun = nil
		f.mu.Unlock()
		f.emit("status", map[string]any{"sessionId": "ses_1", "busy": false, "agentBusy": false, "result": result, "error": errMsg})
	}()
	stream := func(s string, delay time.Duration) bool {
		words := strings.SplitAfter(s, " ")
		for _, w := range words {
			select {
			case <-ctx.Done():
				result, errMsg = "aborted", "context canceled"
				return false
			case <-time.After(delay):
			}
			f.emit("message.delta", map[string]any{"sessionId": "ses_1", "text": w})
		}
		return true
	}
	switch {
	case prompt == "fail":
		stream("Let me ", delay)
		m := msg(aid, "assistant", text("Let me "))
		m["info"].(map[string]any)["error"] = map[string]any{"message": "openai: HTTP 429: rate limit reached"}
		f.putMessage(m)
		result, errMsg = "failed", "openai: HTTP 429: rate limit reached"
	case strings.HasPrefix(prompt, "run bash "):
		cmd := strings.TrimPrefix(prompt, "run bash ")
		md := map[string]any{}
		if c, ok := strings.CutPrefix(cmd, "org "); ok {
			cmd, md = c, map[string]any{"organization": true, "description": "another session's private files"}
		}
		call := tool("bash", "call_1", "pending", map[string]any{"command": cmd}, "")
		f.putMessage(msg(aid, "assistant", call))
		p := map[string]any{"id": "perm_" + userID, "sessionID": "ses_1", "permission": "bash", "patterns": []string{cmd},
			"metadata": md, "always": false, "tool": map[string]any{"messageID": aid, "callID": "call_1"}}
		reply := f.wait(ctx, "perm_"+userID, func() {
			f.mu.Lock()
			f.perms[p["id"].(string)] = p
			f.mu.Unlock()
			f.emit("permission", map[string]any{"sessionId": "ses_1", "state": "pending", "permission": p})
		})
		f.emit("permission", map[string]any{"sessionId": "ses_1", "state": "replied", "permission": p, "reply": reply})
		r, _ := reply.(map[string]any)
		if r == nil || r["reply"] == "reject" {
			f.putMessage(msg(aid, "assistant", map[string]any{"type": "tool", "tool": "bash", "callID": "call_1",
				"state": map[string]any{"status": "error", "input": map[string]any{"command": cmd}, "error": "rejected"}}))
			result = "rejected"
			return
		}
		f.putMessage(msg(aid, "assistant", tool("bash", "call_1", "completed", map[string]any{"command": cmd}, "ran: "+cmd)))
		stream("The command ran.", delay)
		f.putMessage(msg(aid+"2", "assistant", text("The command ran.")))
	case prompt == "ask" || prompt == "ask many":
		multi := prompt == "ask many"
		q := map[string]any{"id": "q_" + userID, "sessionID": "ses_1", "questions": []any{map[string]any{
			"question": "Which colours?", "header": "Colours", "multiSelect": multi,
			"options": []any{
				map[string]any{"label": "Red", "description": "warm"},
				map[string]any{"label": "Green", "description": "calm"},
				map[string]any{"label": "Blue", "description": "cool"},
			}}}}
		ans := f.wait(ctx, "q_"+userID, func() {
			f.mu.Lock()
			f.questions[q["id"].(string)] = q
			f.mu.Unlock()
			f.emit("question", map[string]any{"sessionId": "ses_1", "state": "pending", "question": q})
		})
		f.emit("question", map[string]any{"sessionId": "ses_1", "state": "answered", "question": q, "answers": ans})
		b, _ := json.Marshal(ans)
		f.putMessage(msg(aid, "assistant", text("You chose "+string(b))))
	case prompt == "slow":
		if !stream(strings.Repeat("word ", 200), 50*time.Millisecond) {
			return
		}
		f.putMessage(msg(aid, "assistant", text(strings.Repeat("word ", 200))))
	default:
		answer := "You said: " + prompt + ". That is all I know, friend."
		if !stream(answer, delay) {
			return
		}
		f.putMessage(msg(aid, "assistant", text(answer)))
	}
}

// wait publishes a request and waits for its reply.
func (f *fakeAPI) wait(ctx context.Context, id string, publish func()) any {
	ch := make(chan any, 1)
	f.mu.Lock()
	f.replies[id] = ch
	f.mu.Unlock()
	publish()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		return nil
	}
}

func (f *fakeAPI) answer(w http.ResponseWriter, id string, items map[string]map[string]any, v any, resp map[string]any) {
	f.mu.Lock()
	ch := f.replies[id]
	_, ok := items[id]
	delete(items, id)
	delete(f.replies, id)
	f.mu.Unlock()
	if !ok || ch == nil {
		writeJSON(w, 404, map[string]any{"error": "not found"})
		return
	}
	ch <- v
	writeJSON(w, 200, resp)
}

func (f *fakeAPI) replyPermission(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, 400, map[string]any{"error": "bad JSON"})
		return
	}
	switch body["reply"] {
	case "once", "always", "reject":
	default:
		writeJSON(w, 400, map[string]any{"error": "reply must be once, always or reject"})
		return
	}
	f.mu.Lock()
	p := f.perms[r.PathValue("id")]
	orgOnly := !f.pagePerms || p != nil && p["metadata"].(map[string]any)["organization"] == true
	f.mu.Unlock()
	if orgOnly {
		writeJSON(w, 403, map[string]any{"error": "only the organization can reply to this permission request"})
		return
	}
	f.answer(w, r.PathValue("id"), f.perms, body, map[string]any{"replied": true, "reply": body["reply"]})
}

// orgReply answers the pending permission as the organization would, with
// its own token, outside the page; it waits for one to be pending.
func (f *fakeAPI) orgReply(reply string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		f.mu.Lock()
		for id := range f.perms {
			ch := f.replies[id]
			delete(f.perms, id)
			delete(f.replies, id)
			f.mu.Unlock()
			ch <- map[string]any{"reply": reply}
			return
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			f.t.Fatal("no permission became pending")
		}
	}
}

func (f *fakeAPI) replyQuestion(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Answers [][]string `json:"answers"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Answers == nil {
		writeJSON(w, 400, map[string]any{"error": "answers must be an array of arrays"})
		return
	}
	f.answer(w, r.PathValue("id"), f.questions, body.Answers, map[string]any{"replied": true})
}

func (f *fakeAPI) upload(w http.ResponseWriter, r *http.Request) {
	file, hdr, err := r.FormFile("file")
	if err != nil {
		writeJSON(w, 400, map[string]any{"error": "missing file"})
		return
	}
	b, _ := io.ReadAll(file)
	f.mu.Lock()
	f.uploads[hdr.Filename] = string(b)
	f.mu.Unlock()
	writeJSON(w, 200, map[string]any{"path": "/workspace/uploads/" + hdr.Filename, "name": hdr.Filename, "size": len(b)})
}

func (f *fakeAPI) abort(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.aborted++
	if f.abortRun != nil {
		f.abortRun()
	}
	f.mu.Unlock()
	writeJSON(w, 200, map[string]any{"agentId": "ag_1", "sessionId": "ses_1", "aborted": true})
}
