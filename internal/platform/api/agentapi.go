package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/agenthost/agenthost/internal/httpjson"
)

// The per-agent API that talks to a running agent: messages, usage,
// abort, permissions, questions (this file), files (files.go) and events
// (events.go). Each handler takes a target, so the same code serves an
// organization's token (/api/v1/agents/{agentId}/...) and a session
// capability (/a/{agentId}/session/{sessionId}/api/..., restricted to that
// session).

type targetHandler func(w http.ResponseWriter, r *http.Request, t target) error

func (s *Server) agentRoutes() {
	tok := s.viaToken
	s.Handle("GET /api/v1/agents/{agentId}/messages", tok(s.getMessages))
	s.Handle("POST /api/v1/agents/{agentId}/messages", tok(s.postMessage))
	s.Handle("GET /api/v1/agents/{agentId}/usage", tok(s.getUsage))
	s.Handle("POST /api/v1/agents/{agentId}/abort", tok(s.abort))
	s.Handle("POST /api/v1/agents/{agentId}/files", tok(s.upload))
	s.Handle("GET /api/v1/agents/{agentId}/permissions", tok(s.getPermissions))
	s.Handle("POST /api/v1/agents/{agentId}/permissions/{itemId}/reply", tok(s.replyPermission))
	s.Handle("GET /api/v1/agents/{agentId}/questions", tok(s.getQuestions))
	s.Handle("POST /api/v1/agents/{agentId}/questions/{itemId}/reply", tok(s.replyQuestion))
	s.Handle("GET /api/v1/agents/{agentId}/events", tok(s.events))
	s.workspaceRoutes()
}

// viaToken serves a per-agent route for an organization's token: the
// agent must be the organization's (404) and RUNNING (400).
func (s *Server) viaToken(h targetHandler) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, err := s.agentOf(r)
		if err != nil {
			return err
		}
		if err := running(a); err != nil {
			return err
		}
		if done, err := s.forward(w, r, a); done {
			return err
		}
		return h(w, r, target{agent: a})
	}
}

// sessionFor is the session a request names, within what t grants: a
// capability's session, or whatever the token's caller asked for.
func sessionFor(t target, asked string) (string, error) {
	if t.session == "" || asked == "" || asked == t.session {
		if t.session != "" {
			return t.session, nil
		}
		return asked, nil
	}
	return "", httpjson.Errorf(http.StatusNotFound, "session not found")
}

func (s *Server) getMessages(w http.ResponseWriter, r *http.Request, t target) error {
	sid, err := sessionFor(t, r.URL.Query().Get("sessionId"))
	if err != nil {
		return err
	}
	q := url.Values{}
	if sid != "" {
		q.Set("sessionId", sid)
	}
	v, st, err := s.callJSON(r.Context(), t.agent, controlCall{method: http.MethodGet, path: "/messages", query: q})
	if err != nil {
		return err
	}
	httpjson.Write(w, st, v)
	return nil
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request, t target) error {
	var req struct {
		Message   *string `json:"message"`
		SessionID string  `json:"sessionId"`
	}
	if err := httpjson.Read(w, r, &req); err != nil {
		return err
	}
	if req.Message == nil || strings.TrimSpace(*req.Message) == "" {
		return httpjson.BadRequest("message is required")
	}
	sid, err := sessionFor(t, req.SessionID)
	if err != nil {
		return err
	}
	body := map[string]string{"message": *req.Message}
	if sid != "" {
		body["sessionId"] = sid
	}
	v, st, err := s.callJSON(r.Context(), t.agent, controlCall{method: http.MethodPost, path: "/messages", body: jsonBody(body), contentType: "application/json"})
	if err != nil {
		return err
	}
	httpjson.Write(w, st, v)
	return nil
}

func (s *Server) getUsage(w http.ResponseWriter, r *http.Request, t target) error {
	v, st, err := s.callJSON(r.Context(), t.agent, controlCall{method: http.MethodGet, path: "/usage"})
	if err != nil {
		return err
	}
	m := object(v)
	if m == nil {
		return badAnswer(t, "/usage")
	}
	m["agentId"] = t.agent.ID
	if t.session != "" {
		// One session's usage: its own entry, and totals that are its own.
		var mine []any
		for _, x := range list(m, "sessions") {
			if e := object(x); e != nil && e["sessionId"] == t.session {
				mine = append(mine, e)
				m["totalCost"], m["totalTokens"] = e["cost"], e["tokens"]
			}
		}
		if mine == nil {
			mine = []any{}
			m["totalCost"] = 0
			m["totalTokens"] = map[string]any{"total": 0, "input": 0, "output": 0, "reasoning": 0, "cache": map[string]any{"read": 0, "write": 0}}
		}
		m["sessions"] = mine
	}
	httpjson.Write(w, st, m)
	return nil
}

func (s *Server) abort(w http.ResponseWriter, r *http.Request, t target) error {
	var req struct {
		SessionID string `json:"sessionId"`
	}
	// The body is optional: empty, {} or {"sessionId": "..."}.
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpjson.MaxBody))
	if err != nil {
		return httpjson.Errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", httpjson.MaxBody)
	}
	if strings.TrimSpace(string(b)) != "" {
		if err := httpjson.Decode(b, &req); err != nil {
			return err
		}
	}
	sid, err := sessionFor(t, req.SessionID)
	if err != nil {
		return err
	}
	body := map[string]string{}
	if sid != "" {
		body["sessionId"] = sid
	}
	v, st, err := s.callJSON(r.Context(), t.agent, controlCall{method: http.MethodPost, path: "/abort", body: jsonBody(body), contentType: "application/json"})
	if err != nil {
		return err
	}
	m := object(v)
	if m == nil {
		return badAnswer(t, "/abort")
	}
	m["agentId"] = t.agent.ID
	httpjson.Write(w, st, m)
	return nil
}

// pending lists a runtime's pending permissions or questions (kind is the
// route and the answer's field), only those of t's session when it has one.
func (s *Server) pending(ctx context.Context, t target, kind string) (map[string]any, int, error) {
	v, st, err := s.callJSON(ctx, t.agent, controlCall{method: http.MethodGet, path: "/" + kind})
	if err != nil {
		return nil, 0, err
	}
	m := object(v)
	if m == nil {
		return nil, 0, badAnswer(t, "/"+kind)
	}
	if t.session != "" {
		mine := []any{}
		for _, x := range list(m, kind) {
			if e := object(x); e != nil && e["sessionID"] == t.session {
				mine = append(mine, e)
			}
		}
		m[kind] = mine
	}
	return m, st, nil
}

func (s *Server) getPermissions(w http.ResponseWriter, r *http.Request, t target) error {
	m, st, err := s.pending(r.Context(), t, "permissions")
	if err != nil {
		return err
	}
	httpjson.Write(w, st, m)
	return nil
}

func (s *Server) getQuestions(w http.ResponseWriter, r *http.Request, t target) error {
	m, st, err := s.pending(r.Context(), t, "questions")
	if err != nil {
		return err
	}
	httpjson.Write(w, st, m)
	return nil
}

// owned checks that a capability's session owns the pending item id, and
// returns the item; a token's caller may reply to any of its agent's (the
// item is then nil).
func (s *Server) owned(ctx context.Context, t target, kind, id string) (map[string]any, error) {
	if t.session == "" {
		return nil, nil
	}
	m, _, err := s.pending(ctx, t, kind)
	if err != nil {
		return nil, err
	}
	for _, x := range list(m, kind) {
		if item := object(x); item["id"] == id {
			return item, nil
		}
	}
	return nil, httpjson.Errorf(http.StatusNotFound, "%s not found", strings.TrimSuffix(kind, "s"))
}

// errOrganization answers a session page that replies to a permission only
// the organization may answer.
func errOrganization(why string) error {
	return httpjson.Errorf(http.StatusForbidden, "only the organization can reply to this permission request (%s); the session page shows it until they do", why)
}

func (s *Server) replyPermission(w http.ResponseWriter, r *http.Request, t target) error {
	var req struct {
		Reply   string  `json:"reply"`
		Message *string `json:"message,omitempty"`
		// Scope of an "always": the agent's (the organization's default)
		// or the session's (always, for a session page).
		Scope string `json:"scope,omitempty"`
	}
	if err := httpjson.Read(w, r, &req); err != nil {
		return err
	}
	switch req.Reply {
	case "once", "always", "reject":
	default:
		return httpjson.BadRequest(`reply must be "once", "always" or "reject"`)
	}
	switch {
	case t.session != "" && req.Scope != "" && req.Scope != "session":
		return httpjson.BadRequest(`field "scope": a session page's "always" holds for its own session only ("session")`)
	case req.Scope != "" && req.Scope != "session" && req.Scope != "agent":
		return httpjson.BadRequest(`field "scope" must be "agent" or "session"`)
	}
	if t.session != "" {
		if t.agent.SessionPermissionsOff {
			return errOrganization("this agent's session pages may not approve its tools")
		}
		item, err := s.owned(r.Context(), t, "permissions", r.PathValue("itemId"))
		if err != nil {
			return err
		}
		if md := object(item["metadata"]); md["organization"] == true {
			return errOrganization("it reaches beyond this session")
		}
		req.Scope = "session"
	}
	return s.reply(w, r, t, "permissions", req)
}

func (s *Server) replyQuestion(w http.ResponseWriter, r *http.Request, t target) error {
	var req struct {
		Answers [][]string `json:"answers"`
	}
	if err := httpjson.Read(w, r, &req); err != nil {
		return err
	}
	if req.Answers == nil {
		return httpjson.BadRequest("answers is required: an array with one array of option labels per question")
	}
	return s.reply(w, r, t, "questions", req)
}

// reply forwards a validated reply to a pending permission or question.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, t target, kind string, body any) error {
	id := r.PathValue("itemId")
	if kind != "permissions" { // replyPermission checked it
		if _, err := s.owned(r.Context(), t, kind, id); err != nil {
			return err
		}
	}
	v, st, err := s.callJSON(r.Context(), t.agent, controlCall{
		method: http.MethodPost, path: "/" + kind + "/" + url.PathEscape(id) + replySuffix,
		body: jsonBody(body), contentType: "application/json",
	})
	if err != nil {
		return err
	}
	httpjson.Write(w, st, v)
	return nil
}

// badAnswer is the 502 of a runtime whose answer lacks the seed's shape.
func badAnswer(t target, path string) error {
	return &httpjson.Error{Status: http.StatusBadGateway, Msg: "the agent answered with an unexpected body", Err: fmt.Errorf("agent %s %s: not a JSON object", t.agent.ID, path)}
}
