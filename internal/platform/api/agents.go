package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/store"
)

type sessionJSON struct {
	ID    string  `json:"id"`
	Title *string `json:"title"`
	URL   string  `json:"url"`
	// MessageID is the initial prompt's message, in the create answer.
	MessageID string `json:"messageId,omitempty"`
}

// agentJSON is an agent as GET /api/v1/agents/{id} shows it: the seed's
// fields, plus scopeId and model.
type agentJSON struct {
	AgentID   string        `json:"agentId"`
	Name      string        `json:"name"`
	Status    string        `json:"status"`
	Busy      bool          `json:"busy"`
	URL       string        `json:"url"`
	Sessions  []sessionJSON `json:"sessions"`
	ErrorMsg  *string       `json:"errorMsg"`
	ScopeID   *string       `json:"scopeId"`
	Model     string        `json:"model"`
	CreatedAt string        `json:"createdAt"`
	// SessionPermissions: the agent's session pages may reply to its
	// permission requests (in their own session).
	SessionPermissions bool `json:"sessionPermissions"`
	// LastError is the most recent failed turn (its model call's error)
	// among the sessions whose latest turn failed; null when none did.
	LastError *lastErrorJSON `json:"lastError"`
}

type lastErrorJSON struct {
	SessionID string `json:"sessionId"`
	Message   string `json:"message"`
	At        string `json:"at"`
}

// agentSummaryJSON is an agent in GET /api/v1/agents: the record only, so
// listing does not call every runtime (busy and sessions are per agent).
type agentSummaryJSON struct {
	AgentID   string  `json:"agentId"`
	Name      string  `json:"name"`
	Status    string  `json:"status"`
	URL       string  `json:"url"`
	ErrorMsg  *string `json:"errorMsg"`
	ScopeID   *string `json:"scopeId"`
	Model     string  `json:"model"`
	CreatedAt string  `json:"createdAt"`
	// SessionPermissions as in agentJSON.
	SessionPermissions bool `json:"sessionPermissions"`
}

func (s *Server) agentURL(id string) string { return s.cfg.BaseURL() + "/a/" + id }

func (s *Server) sessionsJSON(agentID string, list []agents.Session) []sessionJSON {
	out := make([]sessionJSON, len(list))
	for i, x := range list {
		out[i] = sessionJSON{ID: x.ID, Title: x.Title, URL: s.cfg.SessionURL(agentID, x.ID), MessageID: x.MessageID}
	}
	return out
}

func (s *Server) summary(a store.Agent) agentSummaryJSON {
	return agentSummaryJSON{
		AgentID: a.ID, Name: a.Name, Status: string(a.Status), URL: s.agentURL(a.ID),
		ErrorMsg: nullable(a.ErrorMsg), ScopeID: nullable(a.ScopeID), Model: a.Model, CreatedAt: ts(a.CreatedAt),
		SessionPermissions: !a.SessionPermissionsOff,
	}
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	list, err := s.cfg.Agents.List(r.Context(), orgID(r))
	if err != nil {
		return err
	}
	out := make([]agentSummaryJSON, len(list))
	for i, a := range list {
		out[i] = s.summary(a)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"agents": out})
	return nil
}

func (s *Server) createAgent(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name          string `json:"name"`
		InitialPrompt string `json:"initialPrompt"`
		HiddenPrompt  string `json:"hiddenPrompt"`
		ScopeID       string `json:"scopeId"`
		Scope         string `json:"scope"`
		Model         string `json:"model"`
		// SessionPermissions: the session pages may reply to permission
		// requests (default true).
		SessionPermissions *bool `json:"sessionPermissions"`
		// MCPServers: the agent's MCP servers, in OpenCode's shape
		// (docs/mcp.md).
		MCPServers json.RawMessage `json:"mcpServers"`
	}
	if err := httpjson.Read(w, r, &req); err != nil {
		return err
	}
	a, sessions, err := s.cfg.Agents.Create(r.Context(), orgID(r), agents.CreateRequest{
		Name: req.Name, ScopeID: req.ScopeID, Scope: req.Scope, Model: req.Model,
		InitialPrompt: req.InitialPrompt, HiddenPrompt: req.HiddenPrompt,
		SessionPermissionsOff: req.SessionPermissions != nil && !*req.SessionPermissions,
		MCPServers:            req.MCPServers,
	})
	if errors.Is(err, store.ErrNotFound) {
		return &httpjson.Error{Status: http.StatusNotFound, Msg: "agent was deleted while it was being provisioned", Err: err}
	}
	if err != nil && a.ID != "" && (errors.Is(err, agents.ErrStartFailed) || errors.Is(err, agents.ErrProvisionTimeout)) {
		// The agent exists (ERROR) although its runtime did not come up:
		// say which, so the caller can inspect or delete it.
		status, msg := classify(err)
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "agent", a.ID, "err", err)
		httpjson.Write(w, status, map[string]any{"error": msg, "agentId": a.ID, "status": string(a.Status)})
		return nil
	}
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"agentId":  a.ID,
		"scopeId":  nullable(a.ScopeID),
		"url":      s.agentURL(a.ID),
		"sessions": s.sessionsJSON(a.ID, sessions),
	})
	return nil
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) error {
	a, err := s.cfg.Agents.Get(r.Context(), orgID(r), r.PathValue("agentId"))
	if err != nil {
		return missing("agent", err)
	}
	if done, err := s.forwardOr(w, r, a, true); done { // its node knows busy and sessions
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StatusTimeout)
	defer cancel()
	st, err := s.cfg.Agents.RuntimeStatus(ctx, a)
	if err != nil {
		// The record is still worth showing: a runtime that does not answer
		// is idle as far as a poller is concerned.
		s.log.Warn("runtime status unavailable", "agent", a.ID, "err", err)
		st = agents.RuntimeStatus{}
	}
	sum := s.summary(a)
	out := agentJSON{
		AgentID: sum.AgentID, Name: sum.Name, Status: sum.Status, Busy: st.Busy, URL: sum.URL,
		Sessions: s.sessionsJSON(a.ID, st.Sessions), ErrorMsg: sum.ErrorMsg, ScopeID: sum.ScopeID,
		Model: sum.Model, CreatedAt: sum.CreatedAt, SessionPermissions: sum.SessionPermissions,
	}
	if e := st.LastError; e != nil {
		out.LastError = &lastErrorJSON{SessionID: e.SessionID, Message: e.Message, At: ts(e.Time)}
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

// patchAgent changes an agent's settings: {"sessionPermissions": bool}.
// It touches the record only, so any node serves it.
func (s *Server) patchAgent(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		SessionPermissions *bool `json:"sessionPermissions"`
	}
	if err := httpjson.Read(w, r, &req); err != nil {
		return err
	}
	if req.SessionPermissions == nil {
		return httpjson.BadRequest("nothing to change: send {\"sessionPermissions\": true} or false")
	}
	a, err := s.cfg.Agents.SetSessionPermissions(r.Context(), orgID(r), r.PathValue("agentId"), *req.SessionPermissions)
	if err != nil {
		return missing("agent", err)
	}
	httpjson.Write(w, http.StatusOK, s.summary(a))
	return nil
}

func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Agents.Delete(r.Context(), orgID(r), r.PathValue("agentId")); err != nil {
		return missing("agent", err)
	}
	httpjson.Write(w, http.StatusOK, map[string]bool{"deleted": true})
	return nil
}

func (s *Server) startAgent(w http.ResponseWriter, r *http.Request) error {
	if done, err := s.forwardLifecycle(w, r); done {
		return err
	}
	a, started, err := s.cfg.Agents.Start(r.Context(), orgID(r), r.PathValue("agentId"))
	if err != nil {
		return missing("agent", err)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"agentId": a.ID, "status": a.Status, "started": started})
	return nil
}

func (s *Server) stopAgent(w http.ResponseWriter, r *http.Request) error {
	if done, err := s.forwardLifecycle(w, r); done {
		return err
	}
	a, stopped, err := s.cfg.Agents.Stop(r.Context(), orgID(r), r.PathValue("agentId"))
	if err != nil {
		return missing("agent", err)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"agentId": a.ID, "status": a.Status, "stopped": stopped})
	return nil
}

func (s *Server) restartAgent(w http.ResponseWriter, r *http.Request) error {
	if done, err := s.forwardLifecycle(w, r); done {
		return err
	}
	a, err := s.cfg.Agents.Restart(r.Context(), orgID(r), r.PathValue("agentId"))
	if err != nil {
		return missing("agent", err)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"agentId": a.ID, "status": a.Status, "restarted": true})
	return nil
}

// forwardLifecycle sends a start, stop or restart of a runtime another
// node runs to that node: only the node that launched it can stop it.
// (Delete is not forwarded: it works from any node, even when the owner is
// down, and the owner destroys the orphaned runtime.)
func (s *Server) forwardLifecycle(w http.ResponseWriter, r *http.Request) (bool, error) {
	a, err := s.agentOf(r)
	if err != nil {
		return true, err
	}
	return s.forward(w, r, a)
}
