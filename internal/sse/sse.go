// Package sse writes Server-Sent Events, the one way every agenthost front
// end streams (host's POST /input with Accept: text/event-stream, the
// coding runtime's /control/events, the platform's event stream): headers
// that keep proxies from buffering, events with ids so a client resumes
// with Last-Event-ID, heartbeat comments, a flush after each write, and no
// write deadline for the life of the stream.
package sse

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// Writer writes one event stream.
type Writer struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// Start sends the stream's headers (with status 200, after extra headers
// set on w) and flushes them. Errors after Start mean the client is gone.
func Start(w http.ResponseWriter) (*Writer, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	rc := http.NewResponseController(w)
	// A stream lives longer than any request deadline the server sets.
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	s := &Writer{w: w, rc: rc}
	return s, s.Flush()
}

// Event writes one event: "id: N" (when id > 0), "event: NAME" (when name
// is set) and data, which must be one line (JSON is), then flushes.
func (s *Writer) Event(id int64, name string, data []byte) error {
	b := make([]byte, 0, len(data)+48)
	if id > 0 {
		b = append(b, "id: "...)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, '\n')
	}
	if name != "" {
		b = append(b, "event: "...)
		b = append(b, name...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.Flush()
}

// Comment writes a comment line (": text"), such as the heartbeat that
// keeps idle streams open through proxies, and flushes.
func (s *Writer) Comment(text string) error {
	if _, err := io.WriteString(s.w, ": "+text+"\n\n"); err != nil {
		return err
	}
	return s.Flush()
}

// Write writes bytes of a stream as they are (a proxy passing another
// stream through) and flushes.
func (s *Writer) Write(b []byte) (int, error) {
	n, err := s.w.Write(b)
	if err != nil {
		return n, err
	}
	return n, s.Flush()
}

// Flush sends what is buffered.
func (s *Writer) Flush() error { return s.rc.Flush() }

// Heartbeat is the interval between heartbeat comments of an idle stream.
const Heartbeat = 15 * time.Second
