// Package web holds the pages agenthost serves from its binary: plain
// HTML, CSS and JavaScript, embedded, with no CDN and no build step.
package web

import (
	"embed"
	"io/fs"
)

//go:embed docs
var docs embed.FS

// Docs is the host's interactive /docs page: index.html, app.js, style.css.
var Docs = mustSub(docs, "docs")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
