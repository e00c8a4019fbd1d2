package api

import (
	"net/http"
	"strings"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/platform/agents"
)

// orgJSON is the caller's organization and its settings.
type orgJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"createdAt"`
	// DefaultModel is the organization's own default (null when unset);
	// EffectiveDefaultModel is what an agent created without a model
	// gets: this default, else the platform's.
	DefaultModel          *string `json:"defaultModel"`
	EffectiveDefaultModel string  `json:"effectiveDefaultModel"`
}

func (s *Server) orgOut(r *http.Request) (orgJSON, error) {
	o, err := s.cfg.Store.OrgByID(r.Context(), orgID(r))
	if err != nil {
		return orgJSON{}, err
	}
	out := orgJSON{ID: o.ID, Name: o.Name, CreatedAt: ts(o.CreatedAt), DefaultModel: nullable(o.DefaultModel),
		EffectiveDefaultModel: o.DefaultModel}
	if out.EffectiveDefaultModel == "" {
		out.EffectiveDefaultModel = s.cfg.Agents.DefaultModel()
	}
	return out, nil
}

// getOrg answers GET /api/v1/org: the caller's organization and settings.
func (s *Server) getOrg(w http.ResponseWriter, r *http.Request) error {
	out, err := s.orgOut(r)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

// patchOrg answers PATCH /api/v1/org: {"defaultModel": "provider/model"}
// sets the default, null clears it. Agents that exist keep their model.
func (s *Server) patchOrg(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		DefaultModel httpjson.Nullable[string] `json:"defaultModel"`
	}
	if err := httpjson.Read(w, r, &req); err != nil {
		return err
	}
	if !req.DefaultModel.Set {
		return httpjson.BadRequest("nothing to change: send {\"defaultModel\": \"provider/model\"} or {\"defaultModel\": null}")
	}
	model := ""
	if !req.DefaultModel.Null {
		model = strings.TrimSpace(req.DefaultModel.Value)
		if err := agents.CheckModel("defaultModel", model); err != nil {
			return err
		}
	}
	if err := s.cfg.Store.SetOrgDefaultModel(r.Context(), orgID(r), model); err != nil {
		return err
	}
	out, err := s.orgOut(r)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}
