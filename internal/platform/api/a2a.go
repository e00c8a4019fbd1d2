package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/agenthost/agenthost/internal/a2amap"
	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/version"
)

// Each platform agent speaks A2A (Agent2Agent 0.3, docs/a2a.md) under its
// API, authenticated like every route by the organization's Bearer token:
//
//	GET  /api/v1/agents/{agentId}/.well-known/agent-card.json
//	POST /api/v1/agents/{agentId}/a2a    (JSON-RPC; SSE for the streams)
//
// It is one more front end over the runtime's control API, as the REST
// routes are: a contextId is a session of the agent (an organization sees
// all of its agents' sessions, so no caller can name another
// organization's), a task is one message's turn ("<sessionId>~<messageId>",
// read back from the session's history), a pending permission or
// question is input-required and the next message naming the task answers
// it, and tasks/cancel aborts the session's turn. File parts are uploads
// into the session's own folder (a2afiles.go); the parts and task ids are
// mapped as on a host (internal/a2amap). a2a-go speaks the wire protocol.

func (s *Server) a2aRoutes() {
	s.Handle("GET /api/v1/agents/{agentId}/.well-known/agent-card.json", s.agentCard)
	s.Handle("POST /api/v1/agents/{agentId}/a2a", s.viaToken(s.serveA2A))
}

// agentCard answers the agent's Agent Card; the agent need not run.
func (s *Server) agentCard(w http.ResponseWriter, r *http.Request) error {
	a, err := s.agentOf(r)
	if err != nil {
		return err
	}
	base := s.cfg.BaseURL() + "/api/v1/agents/" + url.PathEscape(a.ID)
	desc := "A coding agent on an agenthost platform (model " + a.Model + ")."
	card := &a2a.AgentCard{
		Name:               a.Name,
		Description:        desc,
		URL:                base + "/a2a",
		PreferredTransport: a2a.TransportProtocolJSONRPC,
		ProtocolVersion:    "0.3.0",
		Version:            version.String(),
		Capabilities:       a2a.AgentCapabilities{Streaming: true},
		DefaultInputModes:  []string{"text/plain", "application/json"},
		DefaultOutputModes: []string{"text/plain"},
		Skills: []a2a.AgentSkill{{ID: "coding", Name: a.Name, Description: desc, Tags: []string{"coding"},
			Examples: []string{"Build a REST API in Go", "Explain the files in this workspace"}}},
		SecuritySchemes: a2a.NamedSecuritySchemes{
			"orgToken": a2a.HTTPAuthSecurityScheme{Scheme: "bearer",
				Description: "The organization's API token (Authorization: Bearer …), as for every /api/v1 route."},
		},
		Security: []a2a.SecurityRequirements{{"orgToken": a2a.SecuritySchemeScopes{}}},
	}
	httpjson.Write(w, http.StatusOK, card)
	return nil
}

// serveA2A hands the JSON-RPC request to a2a-go's binding over the agent's
// runtime.
func (s *Server) serveA2A(w http.ResponseWriter, r *http.Request, t target) error {
	// File parts travel in the body, base64: it may hold the agent's
	// whole upload allowance and no more.
	limit := s.cfg.MaxUploadTotal/3*4 + 4 + multipartSlack
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return httpjson.Errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes: files in A2A parts are limited as uploads are (%s per file, %s per agent in all)",
				limit, mb(s.cfg.MaxUploadFile), mb(s.cfg.MaxUploadTotal))
		}
		return &httpjson.Error{Status: http.StatusBadRequest, Msg: "reading the request body failed", Err: err}
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	a2asrv.NewJSONRPCHandler(&platformTasks{s: s, agent: t.agent}).ServeHTTP(httpjson.JSONWriter{ResponseWriter: w}, r)
	return nil
}

// platformTasks implements a2asrv.RequestHandler over one agent's runtime.
type platformTasks struct {
	a2amap.Unsupported
	s     *Server
	agent store.Agent
}

// platformA2AError maps the API's errors onto A2A's, keeping the message.
func platformA2AError(err error) error {
	var he *httpjson.Error
	if errors.As(err, &he) {
		switch {
		case he.Status == http.StatusNotFound:
			return fmt.Errorf("%w: %s", a2a.ErrTaskNotFound, he.Msg)
		case he.Status < 500:
			return fmt.Errorf("%w: %s", a2a.ErrInvalidParams, he.Msg)
		}
		return fmt.Errorf("%w: %s", a2a.ErrServerError, he.Msg)
	}
	return fmt.Errorf("%w: %w", a2a.ErrInternalError, err)
}

// OnGetTask implements tasks/get.
func (p *platformTasks) OnGetTask(ctx context.Context, q *a2a.TaskQueryParams) (*a2a.Task, error) {
	return p.task(ctx, q.ID)
}

// OnCancelTask implements tasks/cancel: it aborts the session's turn.
func (p *platformTasks) OnCancelTask(ctx context.Context, q *a2a.TaskIDParams) (*a2a.Task, error) {
	t, err := p.sentTask(ctx, q.ID)
	if err != nil {
		return nil, err
	}
	if t.Status.State.Terminal() {
		if t.Status.State == a2a.TaskStateCanceled {
			return t, nil
		}
		return nil, fmt.Errorf("%w: the task is %s", a2a.ErrTaskNotCancelable, t.Status.State)
	}
	sid, _, _ := a2amap.SplitTaskID(q.ID)
	if t.Status.State == a2a.TaskStateSubmitted {
		// Not in the history: a message queued in a busy session, or no
		// task at all.
		if busy, err := p.busy(ctx, sid); err != nil || !busy {
			return nil, a2a.ErrTaskNotFound
		}
	}
	v, _, err := p.s.callJSON(ctx, p.agent, controlCall{method: http.MethodPost, path: "/abort", body: jsonBody(map[string]string{"sessionId": sid}), contentType: "application/json"})
	if err != nil {
		return nil, platformA2AError(err)
	}
	// The runtime answers {"sessionId", "aborted": true} for one session.
	if object(v)["aborted"] != true {
		return nil, fmt.Errorf("%w: the runtime did not abort the task's turn", a2a.ErrTaskNotCancelable)
	}
	p.s.a2aCanceled.Store(q.ID, struct{}{})
	return p.task(ctx, q.ID)
}

// OnSendMessage implements message/send; unless configuration.blocking is
// false it answers once the task settles.
func (p *platformTasks) OnSendMessage(ctx context.Context, params *a2a.MessageSendParams) (a2a.SendMessageResult, error) {
	ev, err := p.events(ctx)
	if err != nil {
		return nil, err
	}
	defer ev.close()
	id, err := p.send(ctx, params)
	if err != nil {
		return nil, err
	}
	sid, _, _ := a2amap.SplitTaskID(id)
	if params.Config == nil || params.Config.Blocking == nil || *params.Config.Blocking {
		for e := range ev.of(sid) {
			if settled(e) {
				break
			}
		}
	}
	return p.sentTask(ctx, id)
}

// sentTask is the task of a message just sent: one the runtime queued
// (behind the session's running turn) or has not started yet is not in
// the history, and is "submitted".
func (p *platformTasks) sentTask(ctx context.Context, id a2a.TaskID) (*a2a.Task, error) {
	t, err := p.task(ctx, id)
	if errors.Is(err, a2a.ErrTaskNotFound) {
		sid, _, _ := a2amap.SplitTaskID(id)
		return &a2a.Task{ID: id, ContextID: sid, Status: a2a.TaskStatus{State: a2a.TaskStateSubmitted}}, nil
	}
	return t, err
}

// OnSendMessageStream implements message/stream.
func (p *platformTasks) OnSendMessageStream(ctx context.Context, params *a2a.MessageSendParams) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		ev, err := p.events(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		defer ev.close()
		id, err := p.send(ctx, params)
		if err != nil {
			yield(nil, err)
			return
		}
		t, err := p.sentTask(ctx, id)
		if err != nil {
			yield(nil, err)
			return
		}
		if yield(t, nil) {
			p.stream(ctx, t, ev, yield)
		}
	}
}

// OnResubscribeToTask implements tasks/resubscribe.
func (p *platformTasks) OnResubscribeToTask(ctx context.Context, q *a2a.TaskIDParams) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		ev, err := p.events(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		defer ev.close()
		t, err := p.task(ctx, q.ID)
		if err != nil {
			yield(nil, err)
			return
		}
		if !yield(t, nil) || t.Status.State.Terminal() || t.Status.State == a2a.TaskStateInputRequired {
			return
		}
		p.stream(ctx, t, ev, yield)
	}
}

// send posts the message (a new turn in its context) or answers the
// pending permission or question of the task it names.
func (p *platformTasks) send(ctx context.Context, params *a2a.MessageSendParams) (a2a.TaskID, error) {
	msg := params.Message
	if msg == nil {
		return "", fmt.Errorf("%w: params.message is required", a2a.ErrInvalidParams)
	}
	in, err := a2amap.Parse(msg.Parts)
	if err != nil {
		return "", err
	}
	if msg.TaskID != "" {
		if len(in.Files) > 0 {
			return "", fmt.Errorf("%w: a message answering a task carries text, not files; send files in a message without taskId", a2a.ErrInvalidParams)
		}
		return msg.TaskID, p.answer(ctx, msg.TaskID, in.Prompt)
	}
	body := map[string]string{"message": in.Prompt}
	fresh := ""
	if msg.ContextID != "" {
		body["sessionId"] = msg.ContextID
	} else if len(in.Files) > 0 {
		// The files go into the new session's own folder before its
		// first message runs, so the platform names the session.
		fresh = ids.Hex("ses_")
		body["newSessionId"] = fresh
	}
	if len(in.Files) > 0 {
		notes, err := p.saveFiles(ctx, msg.ContextID, fresh, in.Files)
		if err != nil {
			return "", err
		}
		body["message"] = in.Prompt + "\n\n" + strings.Join(notes, "\n")
	}
	v, _, err := p.s.callJSON(ctx, p.agent, controlCall{method: http.MethodPost, path: "/messages", body: jsonBody(body), contentType: "application/json"})
	if err != nil {
		return "", platformA2AError(err)
	}
	m := object(v)
	sid, _ := m["sessionId"].(string)
	mid, _ := m["messageId"].(string)
	if sid == "" || mid == "" {
		return "", fmt.Errorf("%w: the runtime's answer has no sessionId or messageId", a2a.ErrInternalError)
	}
	if fresh != "" && sid != fresh {
		return "", fmt.Errorf("%w: the runtime started session %s, not %s: it is too old for A2A file parts; restart the agent on a current runtime", a2a.ErrInternalError, sid, fresh)
	}
	return a2amap.TaskID(sid, mid), nil
}

// answer replies to the task's pending permission ("yes" once, "always",
// anything else rejects with the text as feedback) or question (the text
// is the answer).
func (p *platformTasks) answer(ctx context.Context, id a2a.TaskID, text string) error {
	t, err := p.task(ctx, id)
	if err != nil {
		return err
	}
	if t.Status.State != a2a.TaskStateInputRequired {
		return fmt.Errorf("%w: the task is %s, not waiting for input", a2a.ErrInvalidParams, t.Status.State)
	}
	sid, _, _ := a2amap.SplitTaskID(id)
	kind, item, err := p.pendingItem(ctx, sid)
	if err != nil || item == nil {
		return fmt.Errorf("%w: the task is not waiting for input any more", a2a.ErrInvalidParams)
	}
	itemID, _ := item["id"].(string)
	var body any
	if kind == "permissions" {
		switch strings.ToLower(strings.Trim(strings.TrimSpace(text), ".!")) {
		case "yes", "y", "approve", "approved", "allow", "ok", "once":
			body = map[string]string{"reply": "once"}
		case "always":
			body = map[string]string{"reply": "always", "scope": "session"}
		default:
			body = map[string]string{"reply": "reject", "message": text}
		}
	} else {
		n := len(list(item, "questions"))
		answers := make([][]string, n)
		for i := range answers {
			answers[i] = []string{strings.TrimSpace(text)}
		}
		body = map[string]any{"answers": answers}
	}
	_, _, err = p.s.callJSON(ctx, p.agent, controlCall{method: http.MethodPost, path: "/" + kind + "/" + url.PathEscape(itemID) + "/reply", body: jsonBody(body), contentType: "application/json"})
	if err != nil {
		return platformA2AError(err)
	}
	return nil
}

// pendingItem is the session's oldest pending permission or question.
func (p *platformTasks) pendingItem(ctx context.Context, sid string) (string, map[string]any, error) {
	for _, kind := range []string{"permissions", "questions"} {
		m, _, err := p.s.pending(ctx, target{agent: p.agent, session: sid}, kind)
		if err != nil {
			return "", nil, platformA2AError(err)
		}
		if items := list(m, kind); len(items) > 0 {
			return kind, object(items[0]), nil
		}
	}
	return "", nil, nil
}

// task reads the task back from its session's history and state.
func (p *platformTasks) task(ctx context.Context, id a2a.TaskID) (*a2a.Task, error) {
	sid, mid, ok := a2amap.SplitTaskID(id)
	if !ok {
		return nil, a2a.ErrTaskNotFound
	}
	q := url.Values{"sessionId": {sid}}
	v, _, err := p.s.callJSON(ctx, p.agent, controlCall{method: http.MethodGet, path: "/messages", query: q})
	if err != nil {
		return nil, platformA2AError(err)
	}
	msgs := list(object(v), "messages")
	start := -1
	for i, x := range msgs {
		if m := object(x); m != nil && m["id"] == mid {
			start = i
			break
		}
	}
	if start < 0 {
		if _, ok := p.s.a2aCanceled.Load(id); ok {
			// Canceled before its turn started: an abort drops it.
			return &a2a.Task{ID: id, ContextID: sid, Status: a2a.TaskStatus{State: a2a.TaskStateCanceled}}, nil
		}
		// A queued message is not in the history yet.
		return nil, fmt.Errorf("%w: no message %s in context %s", a2a.ErrTaskNotFound, mid, sid)
	}
	end := len(msgs)
	for i := start + 1; i < len(msgs); i++ {
		if a2aRole(object(msgs[i])) == "user" {
			end = i
			break
		}
	}
	t := &a2a.Task{ID: id, ContextID: sid}
	var result, failure string
	for _, x := range msgs[start:end] {
		m := object(x)
		info := object(m["info"])
		txt := a2aText(info)
		mm := &a2a.Message{ID: fmt.Sprint(m["id"]), ContextID: sid, TaskID: id, Parts: a2a.ContentParts{a2a.TextPart{Text: txt}}}
		if a2aRole(m) == "user" {
			mm.Role = a2a.MessageRoleUser
		} else {
			mm.Role = a2a.MessageRoleAgent
			if e := object(info["error"]); e != nil {
				failure = fmt.Sprint(e["message"])
			} else if txt != "" {
				result = txt
			}
			if txt == "" {
				continue
			}
		}
		t.History = append(t.History, mm)
	}
	state := a2a.TaskStateCompleted
	if end == len(msgs) {
		busy, err := p.busy(ctx, sid)
		if err != nil {
			return nil, err
		}
		if busy {
			state = a2a.TaskStateWorking
			kind, item, err := p.pendingItem(ctx, sid)
			if err != nil {
				return nil, err
			}
			if item != nil {
				state = a2a.TaskStateInputRequired
				b, _ := json.Marshal(item)
				var data map[string]any
				_ = json.Unmarshal(b, &data)
				data["kind"] = kind
				t.Status.Message = a2a.NewMessageForTask(a2a.MessageRoleAgent, t,
					a2a.TextPart{Text: "The agent waits for an answer (" + kind + "): reply in a message with this taskId (yes, always, or no with a reason; or the answer to the question)."},
					a2a.DataPart{Data: data})
			}
		} else if object(v)["interrupted"] == true {
			// The runtime stores that the session's latest turn was
			// aborted (or cut short by its end), so this outlives a
			// restart of the platform.
			state = a2a.TaskStateCanceled
		} else if failure != "" {
			state = a2a.TaskStateFailed
		}
	}
	if _, ok := p.s.a2aCanceled.Load(id); ok && state != a2a.TaskStateWorking && state != a2a.TaskStateInputRequired {
		state = a2a.TaskStateCanceled
	}
	t.Status.State = state
	switch state {
	case a2a.TaskStateCompleted, a2a.TaskStateCanceled:
		if result != "" {
			t.Artifacts = []*a2a.Artifact{a2amap.ResultArtifact(result)}
			t.Status.Message = a2amap.AgentMessage(t, result)
		}
	case a2a.TaskStateFailed:
		t.Status.Message = a2amap.AgentMessage(t, failure)
	}
	return t, nil
}

// busy asks the runtime whether the session has a turn running, waiting
// or queued.
func (p *platformTasks) busy(ctx context.Context, sid string) (bool, error) {
	v, _, err := p.s.callJSON(ctx, p.agent, controlCall{method: http.MethodGet, path: "/status"})
	if err != nil {
		return false, platformA2AError(err)
	}
	for _, x := range list(object(v), "sessions") {
		if m := object(x); m != nil && m["id"] == sid {
			b, _ := m["busy"].(bool)
			return b, nil
		}
	}
	return false, nil
}

func a2aRole(m map[string]any) string {
	r, _ := object(m["info"])["role"].(string)
	return r
}

func a2aText(info map[string]any) string {
	var b strings.Builder
	for _, x := range list(info, "parts") {
		if part := object(x); part["type"] == "text" {
			s, _ := part["text"].(string)
			b.WriteString(s)
		}
	}
	return b.String()
}
