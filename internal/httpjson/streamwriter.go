package httpjson

import "net/http"

// JSONWriter wraps a ResponseWriter for handlers written for a bare
// net/http server (the A2A SDK's JSON-RPC handler): an answer that sets no
// Content-Type is sent as application/json, not as whatever net/http
// sniffs (text/plain), and Flush reaches the writer below through any
// middleware that wraps it (http.ResponseController), so streams stream.
type JSONWriter struct{ http.ResponseWriter }

func (w JSONWriter) defaultType() {
	if h := w.Header(); h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
}

// WriteHeader implements http.ResponseWriter.
func (w JSONWriter) WriteHeader(code int) {
	w.defaultType()
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w JSONWriter) Write(b []byte) (int, error) {
	w.defaultType()
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (w JSONWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the writer below.
func (w JSONWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
