package api

import (
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/platform/store"
)

const (
	maxScopeName = 100
	maxScopeDesc = 1000
)

type scopeJSON struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	AgentCount  *int    `json:"agentCount,omitempty"`
	SecretCount *int    `json:"secretCount,omitempty"`
	CreatedAt   string  `json:"createdAt,omitempty"`
	UpdatedAt   string  `json:"updatedAt,omitempty"`
}

type scopeAgentJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	CreatedAt string `json:"createdAt"`
}

type scopeDetailJSON struct {
	ID          string           `json:"id"`
	Name        string           `json:"name"`
	Description *string          `json:"description"`
	CreatedAt   string           `json:"createdAt"`
	UpdatedAt   string           `json:"updatedAt"`
	Agents      []scopeAgentJSON `json:"agents"`
	Secrets     []secretJSON     `json:"secrets"`
}

func checkScopeName(name string) error {
	if strings.TrimSpace(name) == "" {
		return httpjson.BadRequest("name: is required")
	}
	if n := utf8.RuneCountInString(name); n > maxScopeName {
		return httpjson.BadRequest("name: must be 1-%d characters (got %d)", maxScopeName, n)
	}
	return nil
}

func checkScopeDesc(d string) error {
	if n := utf8.RuneCountInString(d); n > maxScopeDesc {
		return httpjson.BadRequest("description: must be at most %d characters", maxScopeDesc)
	}
	return nil
}

func scopeConflict(name string, err error) error {
	if errors.Is(err, store.ErrConflict) {
		return &httpjson.Error{Status: http.StatusConflict, Msg: "a scope named \"" + name + "\" already exists", Err: err}
	}
	return err
}

func (s *Server) listScopes(w http.ResponseWriter, r *http.Request) error {
	list, err := s.cfg.Store.ListScopes(r.Context(), orgID(r))
	if err != nil {
		return err
	}
	out := make([]scopeJSON, len(list))
	for i, sc := range list {
		out[i] = scopeJSON{
			ID: sc.ID, Name: sc.Name, Description: sc.Description,
			AgentCount: &sc.AgentCount, SecretCount: &sc.SecretCount,
			CreatedAt: ts(sc.CreatedAt), UpdatedAt: ts(sc.UpdatedAt),
		}
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"scopes": out})
	return nil
}

func (s *Server) createScope(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name        string  `json:"name"`
		Description *string `json:"description"`
	}
	if err := httpjson.Read(w, r, &req); err != nil {
		return err
	}
	if err := checkScopeName(req.Name); err != nil {
		return err
	}
	if req.Description != nil {
		if err := checkScopeDesc(*req.Description); err != nil {
			return err
		}
	}
	now := s.cfg.Now()
	sc := store.Scope{ID: s.cfg.NewID(), OrgID: orgID(r), Name: req.Name, Description: req.Description, CreatedAt: now, UpdatedAt: now}
	if err := s.cfg.Store.CreateScope(r.Context(), sc); err != nil {
		return scopeConflict(req.Name, err)
	}
	httpjson.Write(w, http.StatusCreated, scopeJSON{ID: sc.ID, Name: sc.Name, Description: sc.Description, CreatedAt: ts(sc.CreatedAt)})
	return nil
}

func (s *Server) getScope(w http.ResponseWriter, r *http.Request) error {
	ctx, org := r.Context(), orgID(r)
	sc, err := s.cfg.Store.GetScope(ctx, org, r.PathValue("scopeId"))
	if err != nil {
		return missing("scope", err)
	}
	refs, err := s.cfg.Store.ScopeAgents(ctx, org, sc.ID)
	if err != nil {
		return err
	}
	secs, err := s.cfg.Secrets.List(ctx, org, sc.ID)
	if err != nil {
		return err
	}
	out := scopeDetailJSON{
		ID: sc.ID, Name: sc.Name, Description: sc.Description, CreatedAt: ts(sc.CreatedAt), UpdatedAt: ts(sc.UpdatedAt),
		Agents: make([]scopeAgentJSON, len(refs)), Secrets: secretsJSON(secs),
	}
	for i, a := range refs {
		out.Agents[i] = scopeAgentJSON{ID: a.ID, Name: a.Name, Status: string(a.Status), CreatedAt: ts(a.CreatedAt)}
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

func (s *Server) updateScope(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name        httpjson.Nullable[string] `json:"name"`
		Description httpjson.Nullable[string] `json:"description"`
	}
	if err := httpjson.Read(w, r, &req); err != nil {
		return err
	}
	if !req.Name.Set && !req.Description.Set {
		return httpjson.BadRequest("no fields to update: send name and/or description")
	}
	u := store.ScopeUpdate{UpdatedAt: s.cfg.Now()}
	if req.Name.Set {
		if req.Name.Null {
			return httpjson.BadRequest("name: must be a string")
		}
		if err := checkScopeName(req.Name.Value); err != nil {
			return err
		}
		u.Name = &req.Name.Value
	}
	if req.Description.Set {
		if req.Description.Null {
			u.ClearDescription = true
		} else {
			if err := checkScopeDesc(req.Description.Value); err != nil {
				return err
			}
			u.Description = &req.Description.Value
		}
	}
	sc, err := s.cfg.Store.UpdateScope(r.Context(), orgID(r), r.PathValue("scopeId"), u)
	if err != nil {
		return missing("scope", scopeConflict(req.Name.Value, err))
	}
	httpjson.Write(w, http.StatusOK, scopeJSON{ID: sc.ID, Name: sc.Name, Description: sc.Description, UpdatedAt: ts(sc.UpdatedAt)})
	return nil
}

func (s *Server) deleteScope(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Store.DeleteScope(r.Context(), orgID(r), r.PathValue("scopeId")); err != nil {
		return missing("scope", err)
	}
	httpjson.Write(w, http.StatusOK, map[string]bool{"deleted": true})
	return nil
}
