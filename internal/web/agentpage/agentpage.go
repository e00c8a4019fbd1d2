// Package agentpage is an agent's page on the platform, served at
// /a/{agentId} (the `url` of every agent the API returns): its status, its
// sessions (open one, start one), its workspace files (browse, download),
// its pending permissions and questions (answer them) and its usage.
//
// Like the dashboard it is static: the page signs in with an organization's
// API token kept in sessionStorage (the dashboard's key, so a tab signed in
// there is signed in here) and talks only to /api/v1 with it in the
// Authorization header, never in a URL. Everything the agent produces
// (titles, permission patterns, questions, file names) is put on the page
// as text, never as markup. Whose agent it is the API decides: another
// organization's agent reads as a missing one (404).
package agentpage

import (
	"embed"
	"net/http"
	"strings"

	"github.com/agenthost/agenthost/internal/web/uikit"
)

//go:embed assets
var assets embed.FS

// FS holds the page's files: index.html and the scripts and styles of
// its own it loads from Prefix (the shared ones come from uikit.Prefix).
var FS = uikit.Sub(assets, "assets")

// Prefix is the path under which Handler serves the scripts and styles.
const Prefix = "/ui/agent/"

// Pattern is the page's route.
const Pattern = "/a/{agentId}"

// CSP is the page's Content-Security-Policy: its own scripts and styles
// only, no inline code, no framing.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves index.html for any path outside Prefix and the other
// files under Prefix: mount it at Pattern and at Prefix. The shared files
// the page links are uikit's: mount uikit.Handler at uikit.Prefix too
// (once, for this page and the dashboard).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if rest, ok := strings.CutPrefix(r.URL.Path, Prefix); ok {
			if rest == "" || rest == "index.html" || strings.Contains(rest, "..") || strings.Contains(rest, "/") {
				http.NotFound(w, r)
				return
			}
			name = rest
		}
		uikit.ServeFile(w, r, FS, name, CSP)
	})
}
