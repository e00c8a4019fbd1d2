// Package dashboard is the platform's web dashboard, served at "/": sign in
// with an API token, manage agents, scopes and secrets, and see usage. Its
// files are embedded; the page talks only to /api/v1 with the token the
// user typed, kept in sessionStorage.
package dashboard

import (
	"embed"
	"net/http"
	"strings"

	"github.com/agenthost/agenthost/internal/web/uikit"
)

//go:embed assets
var assets embed.FS

// FS holds the dashboard's files: index.html and the scripts of its own it
// loads from ui/ (the shared style sheet and API client come from
// uikit.Prefix).
var FS = uikit.Sub(assets, "assets")

// Prefix is the path under which Handler serves the scripts and styles.
const Prefix = "/ui/"

// CSP is the dashboard's Content-Security-Policy: its own scripts and
// styles only, no inline code; it frames only its own origin (the session
// page) and is framed by no one.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-src 'self'; frame-ancestors 'none'"

// Handler serves index.html at "/" and the other files under Prefix. Mount
// it for both: mux.Handle("GET /{$}", h) and mux.Handle("GET /ui/", h),
// and uikit.Handler at uikit.Prefix for the files the page shares.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
			if !ok || rest == "" || rest == "index.html" || strings.Contains(rest, "..") {
				http.NotFound(w, r)
				return
			}
			name = rest
		}
		uikit.ServeFile(w, r, FS, name, CSP)
	})
}
