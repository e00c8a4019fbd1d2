package api

import (
	_ "embed"
	"net/http"
	"slices"
)

// OpenAPI is the platform's OpenAPI 3.1 document (openapi/openapi.json,
// written by openapi/gen.py): every route of /api/v1, the session pages'
// API, /health and /ready. Tests check that it lists every registered
// route and that real answers validate against it.
//
//go:embed openapi/openapi.json
var OpenAPI []byte

func (s *Server) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(OpenAPI)
}

// Routes lists the patterns registered so far ("GET /api/v1/agents"), in
// registration order: every route of the root mux (pages included) and of
// the authenticated API, so tests can hold the OpenAPI document to them.
func (s *Server) Routes() []string {
	s.patternsMu.Lock()
	defer s.patternsMu.Unlock()
	return slices.Clone(s.patterns)
}

func (s *Server) registered(pattern string) {
	s.patternsMu.Lock()
	s.patterns = append(s.patterns, pattern)
	s.patternsMu.Unlock()
}
