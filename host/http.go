package host

import (
	"context"
	"errors"
	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/agenthost/agenthost/trust"
	"net/http"
	"strings"
	"time"

	"github.com/agenthost/agenthost/internal/sse"
	"github.com/agenthost/agenthost/internal/store"
)

// routes builds the host's HTTP API.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/input", s.only("POST", s.wrap(s.postInput)))
	mux.Handle("/sessions", s.only("GET", s.wrap(s.listSessions)))
	mux.Handle("/sessions/{id}", s.only("GET", s.wrap(s.getSession)))
	mux.Handle("/health", s.only("GET", s.wrap(s.health)))
	mux.Handle("/info", s.only("GET", s.wrap(s.getInfo)))
	mux.Handle("/openapi.json", s.only("GET", s.wrap(s.openAPI)))
	mux.Handle("/ws", s.only("GET", s.countWS(s.wrap(s.serveWS))))
	mux.Handle("/admin/trust", s.only("POST", s.wrap(s.adminTrust)))
	mux.Handle(MCPPath, s.mcpHandler())
	mux.Handle(A2AAgentCardPath, s.only("GET", s.wrap(s.serveAgentCard)))
	mux.Handle(A2APath, http.HandlerFunc(s.serveA2A))
	mux.Handle("/docs", s.only("GET", http.HandlerFunc(s.docs)))
	mux.Handle("/docs/", s.only("GET", http.HandlerFunc(s.docs)))
	mux.Handle("/{$}", s.only("GET", http.RedirectHandler("/docs", http.StatusFound)))
	mux.Handle("/", s.wrap(func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusNotFound, "not found")
	}))
	return s.limitBodies(mux)
}

// only answers other methods with a JSON 405.
func (s *Server) only(method string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == "GET" && r.Method == "HEAD") {
			w.Header().Set("Allow", method)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " not allowed; use " + method})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// limitBodies bounds every request body (POST /input sets its own larger
// bound from the upload limits) and answers CORS.
func (s *Server) limitBodies(h http.Handler) http.Handler {
	limit := s.set.maxBody
	if limit <= 0 {
		limit = 1 << 20
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Pages of other origins may not drive the agent (origins.go).
		hd := w.Header()
		hd.Add("Vary", "Origin")
		if !originAllowed(r, s.current().cfg.AllowedOrigins) {
			s.writeError(w, r, errOrigin(r))
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			hd.Set("Access-Control-Allow-Origin", o)
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			hd.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			hd.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			hd.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.URL.Path != "/input" && r.URL.Path != A2APath && r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) admitHTTP(r *http.Request) (Caller, error) {
	return s.admit(r.Context(), &Request{Transport: "http", Method: r.Method, Path: r.URL.Path,
		Header: r.Header, RemoteAddr: r.RemoteAddr})
}

// inputResponse is POST /input's answer and OUTPUT's body.
type inputResponse struct {
	SessionID   string     `json:"session_id"`
	Status      string     `json:"status"`
	Result      string     `json:"result"`
	DurationMS  int64      `json:"duration_ms"`
	Session     *Session   `json:"session"`
	ChatItems   []ChatItem `json:"chat_items"`
	ServerNewer bool       `json:"server_newer,omitempty"`
}

func (s *Server) postInput(w http.ResponseWriter, r *http.Request) error {
	rt := s.current()
	limit := maxInputBody(rt.cfg)
	if !s.preAdmit(r, "http") {
		limit = PreAdmitLimit
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		var he *httpError
		if limit == PreAdmitLimit && errors.As(err, &he) && he.Status == http.StatusRequestEntityTooLarge {
			return errorf(http.StatusRequestEntityTooLarge, "request body is larger than %s, the limit until this agent admits you; sign the request headers (X-Co-From, X-Co-To, X-Co-Timestamp, X-Co-Signature) to send more", sizeString(PreAdmitLimit))
		}
		return err
	}
	var in inputRequest
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	in.raw = body
	prompt, err := in.prompt()
	if err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return jsonError(err)
		}
		return err
	}
	sessionID, create, err := in.sessionID()
	if err != nil {
		return err
	}
	caller, err := s.admit(r.Context(), in.gateRequest("http", r.Method, r.URL.Path, r.Header, r.RemoteAddr))
	if err != nil {
		return err
	}
	parts, err := attachments(rt.cfg, in.Images, in.Files, uploadOwner{caller: caller, remote: r.RemoteAddr}, s.now)
	if err != nil {
		return err
	}
	ri := runInput{caller: caller, sessionID: sessionID, session: in.Session, mustExist: !create, prompt: prompt, parts: parts,
		uploads: uploadsDirOf(rt.cfg, uploadOwner{caller: caller, remote: r.RemoteAddr})}
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return s.serveSSE(w, r, ri)
	}
	h, err := s.eng.start(r.Context(), ri, nil)
	if err != nil {
		return err
	}
	select {
	case <-h.done():
	case <-r.Context().Done():
		return r.Context().Err() // the run goes on; its result is stored
	}
	out := h.out()
	if out.Status == store.StatusFailed {
		msg := "run failed"
		if out.Err != nil {
			msg += ": " + out.Err.Error()
		}
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": msg, "session_id": h.sessionID, "status": out.Status})
		return nil
	}
	writeJSON(w, http.StatusOK, inputResponse{
		SessionID: h.sessionID, Status: string(out.Status), Result: out.Result,
		DurationMS: out.Duration.Milliseconds(), Session: out.Session,
		ChatItems: chatItems(out.Session.Messages), ServerNewer: h.serverNewer,
	})
	return nil
}

// sessionView is GET /sessions/{id}.
type sessionView struct {
	SessionID  string     `json:"session_id"`
	Status     string     `json:"status"`
	Prompt     string     `json:"prompt"`
	Result     string     `json:"result"`
	Session    *Session   `json:"session"`
	ChatItems  []ChatItem `json:"chat_items"`
	Created    int64      `json:"created"`
	Updated    int64      `json:"updated"`
	Expires    *int64     `json:"expires"`
	DurationMS int64      `json:"duration_ms"`
}

// view is GET /sessions/{id} of a stored session, its conversation read
// from the engine.
func (e *hostEngine) view(ctx context.Context, ss store.Session) (sessionView, error) {
	v := sessionView{SessionID: ss.ID, Status: string(ss.Status), Prompt: ss.Prompt, Result: ss.Result,
		Created: ss.Created.Unix(), Updated: ss.Updated.Unix(), DurationMS: ss.Duration.Milliseconds()}
	if !ss.Expires.IsZero() {
		e := ss.Expires.Unix()
		v.Expires = &e
	}
	st, err := e.core.Conversation(ctx, ss)
	if err != nil {
		return v, err
	}
	v.Session = sessionOf(ss.ID, st)
	v.ChatItems = chatItems(st.Messages)
	return v, nil
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	caller, err := s.admitHTTP(r)
	if err != nil {
		return err
	}
	ss, err := s.eng.getSession(r.Context(), caller, r.PathValue("id"))
	if err != nil {
		return err
	}
	v, err := s.eng.view(r.Context(), ss)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

type sessionItem struct {
	SessionID string `json:"session_id"`
	Status    string `json:"status"`
	Created   int64  `json:"created"`
	Prompt    string `json:"prompt"`
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	caller, err := s.admitHTTP(r)
	if err != nil {
		return err
	}
	items, err := s.ownSessions(r.Context(), caller)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": items})
	return nil
}

// ownSessions lists the sessions a caller may list: its own; the
// anonymous ones for an anonymous caller under trust open; all for the
// host's own identity. Other anonymous callers are refused. GET /sessions
// and MCP's resources/list answer with it.
func (s *Server) ownSessions(ctx context.Context, caller Caller) ([]sessionItem, error) {
	if caller.Address == "" && !caller.SeesAll && !caller.ListsAnonymous {
		return nil, errorf(http.StatusUnauthorized, "signature required to list sessions (unsigned listing is allowed only under trust open)")
	}
	list, err := s.eng.st.ListSessions(ctx, store.ListOptions{Owner: caller.Address, All: caller.SeesAll})
	if err != nil {
		return nil, err
	}
	items := []sessionItem{}
	for _, ss := range list {
		if s.eng.expired(ss) {
			continue
		}
		items = append(items, sessionItem{SessionID: ss.ID, Status: string(ss.Status), Created: ss.Created.Unix(), Prompt: clipString(ss.Prompt, 200)})
	}
	return items, nil
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "healthy",
		"agent":  s.current().name,
		"uptime": int64(s.now().Sub(s.started) / time.Second),
	})
	return nil
}

func (s *Server) getInfo(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, s.info())
	return nil
}

// serveSSE streams a run as server-sent events: the same events as the
// WebSocket, "id: N" and "data: <json>" each, heartbeat comments, and the
// stream ends after OUTPUT (or the run's ERROR). Errors before the run
// starts are ordinary JSON responses.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request, in runInput) error {
	sub := newSubscriber()
	h, err := s.eng.start(r.Context(), in, sub)
	if err != nil {
		return err
	}
	defer func() { s.eng.unsubscribe(sub) }()
	w.Header().Set("X-Session-Id", h.sessionID)
	stream, _ := sse.Start(w)
	every := s.set.heartbeat
	if every <= 0 {
		every = 15 * time.Second
	}
	beat := time.NewTicker(every)
	defer beat.Stop()
	var last int64
	write := func(ev event) error {
		if ev.ID <= last {
			return nil
		}
		last = ev.ID
		return stream.Event(ev.ID, "", frame(ev))
	}
	for {
		select {
		case ev := <-sub.Events():
			if err := write(ev); err != nil {
				return nil
			}
			if ev.Type == "OUTPUT" || ev.Type == "ERROR" {
				return nil
			}
		case <-sub.Overflow():
			// Fell behind: catch up from the store, then go on live.
			owner := s.eng.core.Owner(h.sessionID)
			s.eng.unsubscribe(sub)
			sub = newSubscriber()
			replay, err := s.eng.subscribe(r.Context(), h.sessionID, owner, sub, last)
			if err != nil {
				return nil
			}
			for _, ev := range replay {
				if err := write(ev); err != nil {
					return nil
				}
				if ev.Type == "OUTPUT" || ev.Type == "ERROR" {
					return nil
				}
			}
		case <-beat.C:
			if err := stream.Comment("ping"); err != nil {
				return nil
			}
		case <-r.Context().Done():
			return nil
		}
	}
}

// corsAllowHeaders are the request headers a page of an allowed origin may
// send: those of signed requests (the X-Co-* headers, the A2A envelope and
// extensions header) and X-Request-Id, besides the plain ones.
var corsAllowHeaders = strings.Join([]string{"Content-Type", "Accept", "Last-Event-ID", "X-Request-Id",
	trust.HeaderFrom, trust.HeaderTo, trust.HeaderSignature, trust.HeaderTimestamp, trust.HeaderNonce,
	A2AEnvelopeHeader, a2asrv.ExtensionsMetaKey}, ", ")
