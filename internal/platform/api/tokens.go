package api

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/platform/auth"
	"github.com/agenthost/agenthost/internal/platform/store"
)

// maxTokenLabel bounds a token's label; it is shown in lists, not parsed.
const maxTokenLabel = 200

type tokenJSON struct {
	ID         string  `json:"id"`
	Label      string  `json:"label"`
	Token      string  `json:"token,omitempty"` // only in the answer that creates it
	CreatedAt  string  `json:"createdAt"`
	LastUsedAt *string `json:"lastUsedAt"`
}

func tokenOut(t store.Token) tokenJSON {
	out := tokenJSON{ID: t.ID, Label: t.Label, CreatedAt: ts(t.CreatedAt)}
	if !t.LastUsedAt.IsZero() {
		s := ts(t.LastUsedAt)
		out.LastUsedAt = &s
	}
	return out
}

// listTokens lists the caller's organization's API tokens. Only ids, labels
// and times: the store holds hashes, so no secret can leak from here.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := s.cfg.Store.ListTokens(r.Context(), orgID(r))
	if err != nil {
		return err
	}
	out := make([]tokenJSON, len(list))
	for i, t := range list {
		out[i] = tokenOut(t)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

// createToken issues a token for the caller's organization and returns it
// once; what is stored is its hash.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Label string `json:"label"`
	}
	if err := httpjson.Read(w, r, &req); err != nil {
		return err
	}
	req.Label = strings.TrimSpace(req.Label)
	if req.Label == "" {
		return httpjson.BadRequest("label: is required")
	}
	if n := utf8.RuneCountInString(req.Label); n > maxTokenLabel {
		return httpjson.BadRequest("label: must be at most %d characters (got %d)", maxTokenLabel, n)
	}
	plain, hash := auth.Generate()
	tok := store.Token{ID: s.cfg.NewID(), OrgID: orgID(r), Label: req.Label, Hash: hash, CreatedAt: s.cfg.Now()}
	if err := s.cfg.Store.CreateToken(r.Context(), tok); err != nil {
		return err
	}
	out := tokenOut(tok)
	out.Token = plain
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusCreated, out)
	return nil
}

// revokeToken deletes one of the organization's tokens; it stops working at
// once. A token may revoke itself. Another organization's token id is 404.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("tokenId")
	if err := s.cfg.Store.DeleteToken(r.Context(), orgID(r), id); err != nil {
		return missing("token", err)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"id": id, "revoked": true})
	return nil
}
