// Package dashboard is the platform's web dashboard, served at "/": sign in
// with an API token, manage agents, scopes and secrets, and see usage. Its
// files are embedded; the page talks only to /api/v1 with the token the
// user typed, kept in sessionStorage.
package dashboard

import (
	"bytes"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// FS holds the dashboard's files: index.html and the scripts and styles it
// loads from ui/.
var FS = mustSub(assets, "assets")

// Prefix is the path under which Handler serves the scripts and styles.
const Prefix = "/ui/"

// Handler serves index.html at "/" and the other files under Prefix. Mount
// it for both: mux.Handle("GET /{$}", h) and mux.Handle("GET /ui/", h).
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
		b, err := fs.ReadFile(FS, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-src 'self'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-cache")
		if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
			h.Set("Content-Type", ct)
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	})
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
