// Package sessionpage is the platform's built-in session page: a minimal
// chat (history, send, upload, stop, permission and question replies,
// live updates over the capability-scoped events stream) served at
// /a/{agentId}/session/{sessionId}?cap=… and embeddable in an <iframe>. It
// talks only to the session's capability API next to it, so it works on any
// origin that frames it.
package sessionpage

import (
	_ "embed"
	"net/http"
)

//go:embed page.html
var page []byte

// HTML is the page.
func HTML() []byte { return page }

// Handler serves the page. The caller sets the security headers (the
// capability check and frame-ancestors are the platform's).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
}
