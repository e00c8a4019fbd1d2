package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/web/session"
)

// Session pages: /a/{agentId}/session/{sessionId}?cap=… is a session's
// embeddable page, and /a/{agentId}/session/{sessionId}/api/… the API it
// talks to, authenticated by the session's capability alone (header
// X-Session-Capability, or ?cap= for EventSource, which cannot set
// headers) and restricted to that session.

// CapabilityHeader carries a session capability.
const CapabilityHeader = "X-Session-Capability"

func (s *Server) sessionRoutes(mux routeMux) {
	const p = "/a/{agentId}/session/{sessionId}"
	mux.HandleFunc("GET "+p, s.sessionPage)
	c := func(pattern string, h targetHandler) {
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := s.viaCapability(w, r, h); err != nil {
				s.respond(w, r, err)
			}
		}))
	}
	c("GET "+p+"/api/messages", s.getMessages)
	c("POST "+p+"/api/messages", s.postMessage)
	c("GET "+p+"/api/events", s.events)
	c("GET "+p+"/api/permissions", s.getPermissions)
	c("POST "+p+"/api/permissions/{itemId}", s.replyPermission)
	c("POST "+p+"/api/permissions/{itemId}/reply", s.replyPermission)
	c("GET "+p+"/api/questions", s.getQuestions)
	c("POST "+p+"/api/questions/{itemId}", s.replyQuestion)
	c("POST "+p+"/api/questions/{itemId}/reply", s.replyQuestion)
	c("POST "+p+"/api/files", s.upload)
	c("POST "+p+"/api/abort", s.abort)
	c("GET "+p+"/api/usage", s.getUsage)
	c("GET "+p+"/api/status", s.sessionStatus)
}

// SessionURL is the embeddable page of one session, capability included.
func (s *Server) SessionURL(agentID, sessionID string) string {
	return s.cfg.BaseURL() + "/a/" + agentID + "/session/" + sessionID + "?cap=" + s.cfg.Capabilities.Mint(agentID, sessionID)
}

func capabilityOf(r *http.Request) string {
	if c := r.Header.Get(CapabilityHeader); c != "" {
		return c
	}
	return r.URL.Query().Get("cap")
}

// viaCapability serves a capability API route: a capability that does not
// grant this session reads exactly like a missing session (404).
func (s *Server) viaCapability(w http.ResponseWriter, r *http.Request, h targetHandler) error {
	t, err := s.capabilityTarget(r.Context(), r)
	if err != nil {
		return err
	}
	if err := running(t.agent); err != nil {
		return err
	}
	if done, err := s.forward(w, r, t.agent); done {
		return err
	}
	return h(w, r, t)
}

func (s *Server) capabilityTarget(ctx context.Context, r *http.Request) (target, error) {
	agentID, sid := r.PathValue("agentId"), r.PathValue("sessionId")
	c := capabilityOf(r)
	if c == "" {
		return target{}, httpjson.Errorf(http.StatusUnauthorized, "missing session capability: use the session URL (?cap=) or the %s header", CapabilityHeader)
	}
	if !s.cfg.Capabilities.Check(agentID, sid, c) {
		return target{}, httpjson.Errorf(http.StatusNotFound, "session not found")
	}
	// The capability was minted by this platform for this agent, so the
	// agent is looked up across organizations.
	a, err := s.cfg.Store.FindAgent(ctx, agentID)
	if err != nil {
		return target{}, missing("session", err)
	}
	return target{agent: a, session: sid}, nil
}

// sessionStatus is the page's view of its session: the agent's status,
// the session's title, and whether it is generating.
func (s *Server) sessionStatus(w http.ResponseWriter, r *http.Request, t target) error {
	v, _, err := s.callJSON(r.Context(), t.agent, controlCall{method: http.MethodGet, path: "/status", timeout: s.cfg.StatusTimeout})
	if err != nil {
		return err
	}
	out := map[string]any{"agentId": t.agent.ID, "sessionId": t.session, "status": t.agent.Status, "busy": false, "title": nil,
		"sessionPermissions": !t.agent.SessionPermissionsOff}
	for _, x := range list(object(v), "sessions") {
		if e := object(x); e != nil && e["id"] == t.session {
			out["title"], out["busy"] = e["title"], e["busy"] == true
		}
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

// sessionPage serves the page of a session its capability grants. It may
// be framed by any origin in FrameAncestors (default *), and it never sends
// its URL, capability included, as a Referer.
//
// A link that does not open (no capability 401, a bad one or one whose
// agent is gone 404) answers a browser's page load (Accept: text/html)
// with an HTML page saying what happened and to ask the organisation for a
// new link; other clients get the JSON error as on every route.
func (s *Server) sessionPage(w http.ResponseWriter, r *http.Request) {
	if _, err := s.capabilityTarget(r.Context(), r); err != nil {
		if !session.WantsHTML(r) {
			s.respond(w, r, err)
			return
		}
		status, _ := classify(err)
		s.logFailure(r, status, err)
		session.WriteError(&framingWriter{ResponseWriter: w, ancestors: s.cfg.FrameAncestors}, status)
		return
	}
	h := w.Header()
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	s.cfg.SessionPage.ServeHTTP(&framingWriter{ResponseWriter: w, ancestors: s.cfg.FrameAncestors}, r)
}

// framingWriter makes the page's Content-Security-Policy carry the
// platform's frame-ancestors, whatever the page handler set, and never an
// X-Frame-Options that would forbid the embedding.
type framingWriter struct {
	http.ResponseWriter
	ancestors string
	wrote     bool
}

// WriteHeader fixes the headers, then writes them.
func (w *framingWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		h := w.Header()
		h.Del("X-Frame-Options")
		h.Set("Content-Security-Policy", withFrameAncestors(h.Get("Content-Security-Policy"), w.ancestors))
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write writes the headers first, as net/http would.
func (w *framingWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (w *framingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withFrameAncestors replaces (or adds) a policy's frame-ancestors.
func withFrameAncestors(policy, ancestors string) string {
	var out []string
	for _, d := range strings.Split(policy, ";") {
		d = strings.TrimSpace(d)
		if d == "" || strings.HasPrefix(strings.ToLower(d), "frame-ancestors") {
			continue
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		out = append(out, "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'")
	}
	return strings.Join(append(out, "frame-ancestors "+ancestors), "; ")
}
