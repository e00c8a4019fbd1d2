package httpjson

import (
	"mime"
	"net/http"
	"strconv"
	"time"
)

// DownloadHeaders makes a response a download that no browser renders:
// application/octet-stream, nosniff, an attachment with the file's name,
// and a sandboxing Content-Security-Policy should it be opened anyway.
// Both APIs that hand out a workspace's files (the runtime's and the
// platform's) answer with it, so an agent's file never runs as a page of
// either origin. size < 0 leaves Content-Length out; a zero modified
// leaves Last-Modified out.
func DownloadHeaders(h http.Header, name string, size int64, modified time.Time) {
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "no-store")
	cd := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	if cd == "" {
		cd = "attachment"
	}
	h.Set("Content-Disposition", cd)
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	if !modified.IsZero() {
		h.Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
	}
}
