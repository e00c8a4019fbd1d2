package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/platform/secrets"
	"github.com/agenthost/agenthost/internal/platform/store"
)

// secretJSON is a secret as every listing shows it: never its value.
type secretJSON struct {
	ID        string `json:"id"`
	Key       string `json:"key"`
	CreatedAt string `json:"createdAt"`
	UpdatedAt string `json:"updatedAt"`
}

func secretsJSON(list []store.Secret) []secretJSON {
	out := make([]secretJSON, len(list))
	for i, x := range list {
		out[i] = secretJSON{ID: x.ID, Key: x.Key, CreatedAt: ts(x.CreatedAt), UpdatedAt: ts(x.UpdatedAt)}
	}
	return out
}

// fieldErr turns a secrets validation error into a 400 naming the field.
func fieldErr(field string, err error) error {
	if errors.Is(err, secrets.ErrInvalid) {
		msg := strings.TrimPrefix(err.Error(), secrets.ErrInvalid.Error()+": ")
		msg = strings.TrimPrefix(msg, field+" ")
		return httpjson.BadRequest("%s: %s", field, msg)
	}
	return err
}

// scopeOf checks that the path's scope is the organization's.
func (s *Server) scopeOf(r *http.Request) (string, error) {
	sc, err := s.cfg.Store.GetScope(r.Context(), orgID(r), r.PathValue("scopeId"))
	if err != nil {
		return "", missing("scope", err)
	}
	return sc.ID, nil
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request, scopeID string) error {
	list, err := s.cfg.Secrets.List(r.Context(), orgID(r), scopeID)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"secrets": secretsJSON(list)})
	return nil
}

func (s *Server) putSecret(w http.ResponseWriter, r *http.Request, scopeID string) error {
	var req struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}
	if err := httpjson.Read(w, r, &req); err != nil {
		return err
	}
	if err := secrets.CheckKey(req.Key); err != nil {
		return fieldErr("key", err)
	}
	if req.Value == nil {
		return httpjson.BadRequest("value: is required")
	}
	if err := secrets.CheckValue(*req.Value); err != nil {
		return fieldErr("value", err)
	}
	sec, created, err := s.cfg.Secrets.Put(r.Context(), orgID(r), scopeID, req.Key, *req.Value)
	if err != nil {
		return missing("scope", err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpjson.Write(w, status, map[string]any{"id": sec.ID, "key": sec.Key, "created": created})
	return nil
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request, scopeID string) error {
	if err := s.cfg.Secrets.Delete(r.Context(), orgID(r), scopeID, r.PathValue("key")); err != nil {
		return missing("secret", err)
	}
	httpjson.Write(w, http.StatusOK, map[string]bool{"deleted": true})
	return nil
}

func (s *Server) listOrgSecrets(w http.ResponseWriter, r *http.Request) error {
	return s.listSecrets(w, r, "")
}

func (s *Server) putOrgSecret(w http.ResponseWriter, r *http.Request) error {
	return s.putSecret(w, r, "")
}

func (s *Server) deleteOrgSecret(w http.ResponseWriter, r *http.Request) error {
	return s.deleteSecret(w, r, "")
}

func (s *Server) listScopeSecrets(w http.ResponseWriter, r *http.Request) error {
	scopeID, err := s.scopeOf(r)
	if err != nil {
		return err
	}
	return s.listSecrets(w, r, scopeID)
}

func (s *Server) putScopeSecret(w http.ResponseWriter, r *http.Request) error {
	scopeID, err := s.scopeOf(r)
	if err != nil {
		return err
	}
	return s.putSecret(w, r, scopeID)
}

func (s *Server) deleteScopeSecret(w http.ResponseWriter, r *http.Request) error {
	scopeID, err := s.scopeOf(r)
	if err != nil {
		return err
	}
	return s.deleteSecret(w, r, scopeID)
}
