package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/agenthost/agenthost/internal/sse"
)

// heartbeat is how often an idle event stream gets a comment line, so
// proxies and load balancers keep it open.
const heartbeat = sse.Heartbeat

// events streams the runtime's Server-Sent Events to the client as they
// come: the runtime numbers them (id:) and replays what a client missed
// when it reconnects with Last-Event-ID, which passes through (or
// ?lastEventId=, for clients that cannot set headers). ?sessionId= keeps
// one session's events; a capability's stream is always its session's.
func (s *Server) events(w http.ResponseWriter, r *http.Request, t target) error {
	sid, err := sessionFor(t, r.URL.Query().Get("sessionId"))
	if err != nil {
		return err
	}
	q := url.Values{}
	if sid != "" {
		q.Set("sessionId", sid)
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("lastEventId")
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	resp, done, err := s.callRuntime(ctx, t.agent, controlCall{method: http.MethodGet, path: "/events", query: q, lastEventID: last})
	if err != nil {
		return err
	}
	defer done()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return runtimeError(t.agent.ID, "/events", resp.StatusCode, b)
	}
	stream, err := sse.Start(w)
	if err != nil {
		return nil
	}

	// One goroutine reads the runtime; this one writes, and adds a
	// heartbeat comment when the stream is idle between two events.
	chunks := make(chan []byte)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := resp.Body.Read(buf)
			if n > 0 {
				select {
				case chunks <- buf[:n]:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	var tail []byte // the last bytes written, to find event boundaries
	for {
		select {
		case b, ok := <-chunks:
			if !ok {
				return nil // the runtime ended the stream; the client reconnects
			}
			if _, err := stream.Write(b); err != nil {
				return nil
			}
			tail = append(tail, b...)
			if len(tail) > 2 {
				tail = tail[len(tail)-2:]
			}
			tick.Reset(heartbeat)
		case <-tick.C:
			if len(tail) > 0 && !bytes.Equal(tail, []byte("\n\n")) {
				continue // mid-event: a comment here would split it
			}
			if err := stream.Comment("ping"); err != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// streamContext is a request's context that also ends when the server
// closes its streams (at shutdown), so a long-lived stream never holds the
// shutdown up.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.streams, cancel)
	return ctx, func() { stop(); cancel() }
}

// CloseStreams ends every event stream; the platform calls it when it
// shuts down. Clients reconnect (to another replica, or later) with
// Last-Event-ID and lose nothing.
func (s *Server) CloseStreams() { s.closeStreams() }
