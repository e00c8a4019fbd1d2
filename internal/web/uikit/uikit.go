// Package uikit is what the platform's pages (the dashboard and the agent
// page) share, so that each piece has one home: the base stylesheet, the
// script with the DOM helpers, the /api/v1 client and the sign-in form
// (served once, under Prefix, and linked by both pages), and ServeFile,
// which serves any page's embedded file with the pages' security headers.
package uikit

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

// FS holds the shared files: base.css and api.js.
var FS = Sub(assets, "assets")

// Prefix is the path under which Handler serves the shared files; both
// pages link them from here, so a browser fetches them once.
const Prefix = "/ui/kit/"

// CSP is the shared files' Content-Security-Policy: the strictest of the
// pages', since a style sheet or script needs none of what it forbids.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the shared files under Prefix; anything else under it,
// folders included, is 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok || strings.Contains(rest, "/") {
			http.NotFound(w, r)
			return
		}
		ServeFile(w, r, FS, rest, CSP)
	})
}

// ServeFile writes the file name of fsys with the headers every page and
// its files carry (nosniff, no referrer, no framing, csp, no-cache), or a
// 404 when there is no such file or name reaches outside fsys.
func ServeFile(w http.ResponseWriter, r *http.Request, fsys fs.FS, name, csp string) {
	if name == "" || strings.Contains(name, "..") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		h.Set("Content-Type", ct)
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// Sub is fs.Sub for an embedded folder that is known to exist: it panics
// otherwise, at start-up, where a wrong go:embed shows at once.
func Sub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
