package coderuntime

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agenthost/agenthost/internal/coding"
	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/internal/sse"
)

// The control API (docs/runtime-control.md): the front end of this
// runtime's session engine.

// maxBody bounds JSON request bodies.
const maxBody = httpjson.MaxBody

// handler is an HTTP handler that returns its error; serveError writes it.
type handler func(w http.ResponseWriter, r *http.Request) error

// Handler returns the runtime's HTTP API: /health, /control/... and
// /metrics (Prometheus; control token required, as for /control), each
// request with an id, a span and an access log line (Debug for /health
// and /metrics, which the platform and scrapers poll).
func (rt *Runtime) Handler() http.Handler {
	mux := http.NewServeMux()
	metrics := obs.MetricsHandler(rt.reg)
	mux.Handle("GET /metrics", rt.auth(func(w http.ResponseWriter, r *http.Request) error {
		metrics.ServeHTTP(w, r)
		return nil
	}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	route := func(pattern string, h handler) {
		mux.Handle(pattern, rt.auth(h))
	}
	ok := func(w http.ResponseWriter, v any, err error) error {
		if err != nil {
			return err
		}
		httpjson.Write(w, http.StatusOK, v)
		return nil
	}
	route("GET /control/status", func(w http.ResponseWriter, r *http.Request) error {
		st, err := rt.Status(r.Context())
		return ok(w, st, err)
	})
	route("GET /control/messages", rt.getMessages)
	route("POST /control/messages", rt.postMessage)
	route("GET /control/usage", func(w http.ResponseWriter, r *http.Request) error {
		u, err := rt.Usage(r.Context())
		return ok(w, u, err)
	})
	route("POST /control/abort", rt.postAbort)
	route("POST /control/files", rt.postFile)
	route("GET /control/files", rt.getFiles)
	route("GET /control/files/content", rt.getFileContent)
	route("GET /control/permissions", func(w http.ResponseWriter, r *http.Request) error {
		ps, err := rt.Permissions(r.Context())
		return ok(w, PermissionList{Permissions: ps}, err)
	})
	route("POST /control/permissions/{id}", rt.postPermission)
	route("POST /control/permissions/{id}/reply", rt.postPermission)
	route("GET /control/questions", func(w http.ResponseWriter, r *http.Request) error {
		qs, err := rt.Questions(r.Context())
		return ok(w, QuestionList{Questions: qs}, err)
	})
	route("POST /control/questions/{id}", rt.postQuestion)
	route("POST /control/questions/{id}/reply", rt.postQuestion)
	route("GET /control/events", rt.getEvents)
	route("/control/", func(w http.ResponseWriter, r *http.Request) error {
		return httpjson.Errorf(http.StatusNotFound, "no route %s %s", r.Method, r.URL.Path)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpjson.WriteError(w, http.StatusNotFound, "not found")
	})
	return obs.Middleware(obs.HTTPConfig{Metrics: rt.httpm, Logger: rt.log, Quiet: []string{"/health", "/metrics"}}, mux)
}

// auth checks the control token, then runs h and turns its error into a
// response.
func (rt *Runtime) auth(h handler) http.Handler {
	want := []byte("Bearer " + rt.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			httpjson.WriteError(w, http.StatusUnauthorized, "invalid or missing control token")
			return
		}
		if err := h(w, r); err != nil {
			rt.serveError(w, r, err)
		}
	})
}

func (rt *Runtime) serveError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpjson.Error
	switch {
	case errors.As(err, &he):
		httpjson.WriteError(w, he.Status, he.Msg)
	case errors.Is(err, ErrNotFound):
		httpjson.WriteError(w, http.StatusNotFound, "session not found")
	case errors.Is(err, ErrUnknownRequest):
		httpjson.WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrAnswered):
		httpjson.WriteError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrBadReply):
		httpjson.WriteError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, engine.ErrShuttingDown):
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the runtime is shutting down")
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the request was cancelled")
	default:
		rt.log.ErrorContext(r.Context(), "control API", "method", r.Method, "path", r.URL.Path, "err", err)
		httpjson.WriteError(w, http.StatusInternalServerError, "internal error")
	}
}

// readJSON decodes a JSON object body into v; fields v does not know are
// ignored. An empty body is allowed when optional is set.
func readJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return httpjson.Errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxBody)
		}
		return httpjson.BadRequest("reading the request body failed")
	}
	body := strings.TrimSpace(string(b))
	if body == "" {
		if optional {
			return nil
		}
		return httpjson.BadRequest("request body is empty; send a JSON object")
	}
	if body[0] != '{' {
		return httpjson.BadRequest("request body must be a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return httpjson.BadRequest("field %q must be %s", te.Field, te.Type)
		}
		return httpjson.BadRequest("invalid JSON body")
	}
	return nil
}

func (rt *Runtime) getMessages(w http.ResponseWriter, r *http.Request) error {
	if id := r.URL.Query().Get("sessionId"); id != "" {
		h, err := rt.History(r.Context(), id)
		if err != nil {
			return err
		}
		httpjson.Write(w, http.StatusOK, h)
		return nil
	}
	all, err := rt.AllHistory(r.Context())
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, all)
	return nil
}

func (rt *Runtime) postMessage(w http.ResponseWriter, r *http.Request) error {
	var req SendRequest
	if err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if strings.TrimSpace(req.Message) == "" {
		return httpjson.BadRequest("message is required")
	}
	var res SendResult
	var err error
	if req.NewSessionID != "" {
		if req.SessionID != "" {
			return httpjson.BadRequest("name sessionId or newSessionId, not both")
		}
		if err := rt.freshSession(r.Context(), req.NewSessionID); err != nil {
			return err
		}
		res, err = rt.send(r.Context(), "", req.NewSessionID, req.Message)
	} else {
		res, err = rt.Send(r.Context(), req.SessionID, req.Message)
	}
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, res)
	return nil
}

func (rt *Runtime) postAbort(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		SessionID string `json:"sessionId"`
	}
	if err := readJSON(w, r, &req, true); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if req.SessionID != "" {
		if err := rt.Abort(ctx, req.SessionID); err != nil {
			return err
		}
		httpjson.Write(w, http.StatusOK, map[string]any{"sessionId": req.SessionID, "aborted": true})
		return nil
	}
	ids, err := rt.AbortAll(ctx)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"aborted": ids})
	return nil
}

func (rt *Runtime) postPermission(w http.ResponseWriter, r *http.Request) error {
	var rep coding.Reply
	if err := readJSON(w, r, &rep, false); err != nil {
		return err
	}
	if err := rt.ReplyPermission(r.Context(), r.PathValue("id"), rep); err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, PermissionReplied{Replied: true, Reply: rep.Reply})
	return nil
}

func (rt *Runtime) postQuestion(w http.ResponseWriter, r *http.Request) error {
	var raw struct {
		Answers json.RawMessage `json:"answers"`
	}
	if err := readJSON(w, r, &raw, false); err != nil {
		return err
	}
	if len(raw.Answers) == 0 || string(raw.Answers) == "null" {
		return httpjson.BadRequest("answers is missing")
	}
	var answers [][]string
	if err := json.Unmarshal(raw.Answers, &answers); err != nil {
		return httpjson.BadRequest("answers must be an array of arrays of labels")
	}
	if err := rt.ReplyQuestion(r.Context(), r.PathValue("id"), answers); err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, map[string]bool{"replied": true})
	return nil
}

// getEvents streams events as SSE: the stored ones after Last-Event-ID,
// then live ones.
func (rt *Runtime) getEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = q.Get("lastEventId")
	}
	var cursor int64
	if last != "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return httpjson.BadRequest("Last-Event-ID must be an event id")
		}
		cursor = n
	} else {
		n, err := rt.st.LastEventID(r.Context())
		if err != nil {
			return err
		}
		cursor = n
	}
	sessionID := q.Get("sessionId")
	w.Header().Set("Cache-Control", "no-store")
	s, err := sse.Start(w)
	if err != nil {
		return nil
	}
	beat := time.NewTicker(rt.cfg.Heartbeat)
	defer beat.Stop()
	for {
		changed := rt.eng.Changed()
		evs, err := rt.st.Events(r.Context(), sessionID, cursor, 500)
		if err != nil {
			if r.Context().Err() == nil {
				rt.log.Error("reading events", "err", err)
			}
			return nil
		}
		for _, e := range evs {
			if err := s.Event(e.ID, e.Type, e.Data); err != nil {
				return nil
			}
			cursor = e.ID
		}
		if len(evs) == 500 {
			continue
		}
		select {
		case <-changed:
		case <-beat.C:
			if err := s.Comment("ping"); err != nil {
				return nil
			}
		case <-r.Context().Done():
			return nil
		case <-rt.ctx.Done():
			return nil
		}
	}
}
