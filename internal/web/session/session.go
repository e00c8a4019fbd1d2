// Package session is the embeddable page of one agent session: chat with
// streaming, tool calls, permission requests, questions, uploads, abort and
// usage, talking to the capability-scoped API under the page's own path
// ("<page>/api/...", capability from the page's ?cap= query).
//
// Handler answers every GET with the page itself: one HTML document with
// its scripts and styles inlined and pinned by hash in the
// Content-Security-Policy, so the platform can mount it at
// /a/{agentId}/session/{sessionId} (behind any prefix) without routing
// asset paths. The page may be framed by any origin.
package session

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// FS holds the page's source files: index.html, the scripts and the
// stylesheet it inlines.
var FS = mustSub(assets, "assets")

// scripts are inlined in this order, where index.html says <!--scripts-->.
var scripts = []string{"util.js", "render.js", "app.js"}

// styles are inlined where index.html says <!--styles-->.
var styles = []string{"app.css"}

var page, csp = build()

// Page returns the page's HTML with everything inlined.
func Page() []byte { return page }

// Handler serves the page for GET and HEAD, whatever the path.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		// The capability is in the URL: never send it on as a referrer.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(page))
	})
}

func build() ([]byte, string) {
	html := string(must(fs.ReadFile(FS, "index.html")))
	var js, css strings.Builder
	for _, n := range scripts {
		js.Write(must(fs.ReadFile(FS, n)))
		js.WriteString("\n")
	}
	for _, n := range styles {
		css.Write(must(fs.ReadFile(FS, n)))
		css.WriteString("\n")
	}
	html = strings.Replace(html, "<!--styles-->", "<style>"+css.String()+"</style>", 1)
	html = strings.Replace(html, "<!--scripts-->", "<script>"+js.String()+"</script>", 1)
	policy := fmt.Sprintf("default-src 'none'; script-src '%s'; style-src '%s'; connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors *",
		hash(js.String()), hash(css.String()))
	return []byte(html), policy
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
