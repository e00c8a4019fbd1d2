package host

import (
	_ "embed"
	"net/http"
	"strings"

	"github.com/agenthost/agenthost/internal/web"
)

// openAPIDoc is the OpenAPI 3.1 description of the host API, including the
// WebSocket frames under x-websocket. It is hand-written; a test checks
// that every route and frame is in it.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Access-Control-Allow-Origin", "*")
	w.Write(openAPIDoc)
	return nil
}

var docsFiles = http.FileServerFS(web.Docs)

// docs serves the interactive page: /docs is index.html, /docs/x is x.
func (s *Server) docs(w http.ResponseWriter, r *http.Request) {
	r2 := r.Clone(r.Context())
	p := strings.TrimPrefix(r.URL.Path, "/docs")
	if p == "" || p == "/" || p == "/index.html" {
		p = "/"
	}
	r2.URL.Path = p
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; style-src 'self'; script-src 'self'")
	docsFiles.ServeHTTP(w, r2)
}
