// Package api is the platform's HTTP API, /api/v1 of seed 003: every route
// authenticated by an organization's Bearer token, every answer JSON, every
// error `{"error": "..."}` with the seed's status. Handlers return errors;
// respond turns them into responses in one place.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/auth"
	"github.com/agenthost/agenthost/internal/platform/capability"
	"github.com/agenthost/agenthost/internal/platform/secrets"
	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/web/agentpage"
	"github.com/agenthost/agenthost/internal/web/dashboard"
	"github.com/agenthost/agenthost/internal/web/session"
	"github.com/agenthost/agenthost/internal/web/uikit"
)

// Config is what the API serves from.
type Config struct {
	Store   store.Store
	Auth    *auth.Authenticator
	Agents  *agents.Manager
	Secrets *secrets.Service
	Logger  *slog.Logger
	Now     func() time.Time
	NewID   func() string
	// BaseURL is the platform's public base URL (no trailing slash); agent
	// and session URLs are built on it.
	BaseURL func() string
	// SessionURL is the embeddable page of one session. Default:
	// BaseURL()/a/{agentId}/session/{sessionId}. The session-page work
	// replaces it with a URL carrying a capability.
	SessionURL func(agentID, sessionID string) string
	// StatusTimeout bounds the call to a runtime behind GET
	// /api/v1/agents/{id}. Default 5 s.
	StatusTimeout time.Duration
	// RuntimeTimeout bounds a forwarded JSON call to a runtime (event
	// streams are unbounded, uploads have 5 min). Default 30 s.
	RuntimeTimeout time.Duration
	// RuntimeTransport carries the calls to runtimes. Default: a transport
	// keeping up to 64 idle connections per runtime.
	RuntimeTransport http.RoundTripper
	// Capabilities mints and checks session capabilities. Required.
	Capabilities *capability.Signer
	// FrameAncestors is the CSP frame-ancestors source list of session
	// pages: who may embed them. Default "*".
	FrameAncestors string
	// SessionPage serves a session's page once its capability checked.
	// Default: the session page of internal/web/session.
	SessionPage http.Handler
	// MaxUploadFile and MaxUploadTotal are the upload limits (defaults:
	// the seed's 50 MB per file and 100 MB per agent).
	MaxUploadFile, MaxUploadTotal int64
	// TempDir spools uploads while they are checked. Default os.TempDir().
	TempDir string
	// ForwardKey signs the requests this node forwards to the node that
	// runs an agent's runtime (see ForwardKey); nil disables forwarding
	// (such requests are 503).
	ForwardKey []byte
	// ForwardTransport carries forwarded requests. Default: a transport
	// without proxy.
	ForwardTransport http.RoundTripper
	// HTTPMetrics records the requests; nil: none.
	HTTPMetrics *obs.HTTPMetrics
	// Ready says whether the platform serves ("ready"), is starting
	// (re-attaching the runtimes of an earlier process) or stopping: GET
	// /ready. Nil: always "ready".
	Ready func() string
	// SandboxDisabled makes /health say "sandbox": "disabled" (the
	// platform runs with --insecure-no-sandbox) instead of "enabled".
	SandboxDisabled bool
}

// Server is the API's http.Handler.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux // routes under /api/v1, behind authentication
	h   http.Handler
	// runtimeHTTP calls runtimes' control APIs.
	runtimeHTTP *http.Client
	// forwardHTTP carries requests forwarded to other nodes.
	forwardHTTP http.RoundTripper
	// streams ends with CloseStreams: event streams stop at shutdown.
	streams      context.Context
	closeStreams context.CancelFunc
	// patterns are the registered routes (Routes).
	patternsMu sync.Mutex
	patterns   []string
	// a2aCanceled remembers the A2A tasks tasks/cancel aborted while this
	// server runs (a2a.TaskID → struct{}). The runtime stores only that a
	// session's latest turn was interrupted, which task reads back, so
	// after a restart of the platform a canceled task that later turns of
	// its context followed reads as completed, and one canceled while
	// still queued (never in the history) is not found.
	a2aCanceled sync.Map
}

// HandlerFunc is a handler that returns its error instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// New returns the API server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = obs.Logger(cfg.Logger)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StatusTimeout <= 0 {
		cfg.StatusTimeout = 5 * time.Second
	}
	if cfg.RuntimeTimeout <= 0 {
		cfg.RuntimeTimeout = 30 * time.Second
	}
	if cfg.RuntimeTransport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		t.Proxy = nil // runtimes are on loopback
		cfg.RuntimeTransport = t
	}
	if cfg.ForwardTransport == nil {
		cfg.ForwardTransport = forwardingTransport()
	}
	if cfg.FrameAncestors == "" {
		cfg.FrameAncestors = "*"
	}
	if cfg.SessionPage == nil {
		cfg.SessionPage = session.Handler()
	}
	if cfg.MaxUploadFile <= 0 {
		cfg.MaxUploadFile = MaxUploadFile
	}
	if cfg.MaxUploadTotal <= 0 {
		cfg.MaxUploadTotal = MaxUploadTotal
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), runtimeHTTP: &http.Client{Transport: obs.Transport(cfg.RuntimeTransport)}, forwardHTTP: cfg.ForwardTransport}
	s.streams, s.closeStreams = context.WithCancel(context.Background())
	if cfg.SessionURL == nil {
		s.cfg.SessionURL = s.SessionURL
	}
	s.routes()
	root := routeMux{ServeMux: http.NewServeMux(), s: s}
	sandbox := "enabled"
	if cfg.SandboxDisabled {
		sandbox = "disabled"
	}
	root.HandleFunc("GET /health", s.health(sandbox))
	root.HandleFunc("GET /ready", s.ready)
	root.HandleFunc("GET /api/v1/openapi.json", s.serveOpenAPI)
	// The authenticated API's own mux: its routes are recorded one by one
	// (Handle), so the prefix is not.
	root.ServeMux.Handle("/api/v1/", s.authenticate(s.mux))
	s.sessionRoutes(root)
	dash := dashboard.Handler() // the web dashboard: / and its files under /ui/
	root.Handle("GET /{$}", dash)
	root.Handle("GET "+dashboard.Prefix, dash)
	// The agent's page, /a/{agentId}, and its files under /ui/agent/
	// (recorded one by one).
	page := agentpage.Handler()
	root.Handle("GET "+agentpage.Pattern, page)
	root.Handle("GET "+agentpage.Prefix, page)
	root.Handle("GET "+uikit.Prefix, uikit.Handler()) // the files both pages share
	root.ServeMux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpjson.WriteError(w, http.StatusNotFound, "not found")
	})
	s.h = obs.Middleware(obs.HTTPConfig{Metrics: cfg.HTTPMetrics, Logger: s.log, Quiet: []string{"/health", "/ready"}}, s.recoverPanics(root.ServeMux))
	return s
}

// routeMux is the platform's root mux, recording every pattern registered
// on it (Routes), so that a test holds each to the OpenAPI document or to
// its list of HTML pages exempt from it: no route escapes the check.
type routeMux struct {
	*http.ServeMux
	s *Server
}

// Handle registers and records a pattern.
func (m routeMux) Handle(pattern string, h http.Handler) {
	m.s.registered(pattern)
	m.ServeMux.Handle(pattern, h)
}

// HandleFunc registers and records a pattern.
func (m routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// Handle registers an authenticated route, e.g. "GET /api/v1/agents/{agentId}/usage".
func (s *Server) Handle(pattern string, h HandlerFunc) {
	s.registered(pattern)
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		obs.SetRoute(r.Context(), r.Pattern)
		if err := h(w, r); err != nil {
			s.respond(w, r, err)
		}
	}))
}

func (s *Server) routes() {
	s.Handle("GET /api/v1/agents", s.listAgents)
	s.Handle("POST /api/v1/agents", s.createAgent)
	s.Handle("GET /api/v1/agents/{agentId}", s.getAgent)
	s.Handle("PATCH /api/v1/agents/{agentId}", s.patchAgent)
	s.Handle("DELETE /api/v1/agents/{agentId}", s.deleteAgent)
	s.Handle("POST /api/v1/agents/{agentId}/start", s.startAgent)
	s.Handle("POST /api/v1/agents/{agentId}/stop", s.stopAgent)
	s.Handle("POST /api/v1/agents/{agentId}/restart", s.restartAgent)
	s.agentRoutes()
	s.a2aRoutes()

	s.Handle("GET /api/v1/scopes", s.listScopes)
	s.Handle("POST /api/v1/scopes", s.createScope)
	s.Handle("GET /api/v1/scopes/{scopeId}", s.getScope)
	s.Handle("PATCH /api/v1/scopes/{scopeId}", s.updateScope)
	s.Handle("DELETE /api/v1/scopes/{scopeId}", s.deleteScope)
	s.Handle("GET /api/v1/scopes/{scopeId}/secrets", s.listScopeSecrets)
	s.Handle("PUT /api/v1/scopes/{scopeId}/secrets", s.putScopeSecret)
	s.Handle("DELETE /api/v1/scopes/{scopeId}/secrets/{key}", s.deleteScopeSecret)

	s.Handle("GET /api/v1/secrets", s.listOrgSecrets)
	s.Handle("PUT /api/v1/secrets", s.putOrgSecret)
	s.Handle("DELETE /api/v1/secrets/{key}", s.deleteOrgSecret)

	s.Handle("GET /api/v1/org", s.getOrg)
	s.Handle("PATCH /api/v1/org", s.patchOrg)

	s.Handle("GET /api/v1/tokens", s.listTokens)
	s.Handle("POST /api/v1/tokens", s.createToken)
	s.Handle("DELETE /api/v1/tokens/{tokenId}", s.revokeToken)

	s.mux.HandleFunc("/api/v1/", s.noRoute)
}

// noRoute answers paths no route matches: 405 with Allow when the path
// exists under another method, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/api/v1/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		httpjson.WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", r.Method, strings.Join(allow, ", ")))
		return
	}
	httpjson.WriteError(w, http.StatusNotFound, "not found")
}

type ctxKey struct{}

// orgID is the authenticated organization of a request.
func orgID(r *http.Request) string { return r.Context().Value(ctxKey{}).(store.Token).OrgID }

func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := s.cfg.Auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agenthost"`)
			s.respond(w, r, err)
			return
		}
		obs.AddLogAttrs(r.Context(), slog.String("org", tok.OrgID))
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, tok)))
	})
}

// respond is the one place errors become responses.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := classify(err)
	s.logFailure(r, status, err)
	httpjson.WriteError(w, status, msg)
}

// logFailure logs an answer's error when the platform failed (5xx):
// unexpected ones at ERROR, a runtime or node not answering at WARN.
func (s *Server) logFailure(r *http.Request, status int, err error) {
	if status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout && status != http.StatusBadGateway {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else if status >= 500 {
		s.log.WarnContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
}

// classify maps an error to its status and client-facing message.
func classify(err error) (int, string) {
	var he *httpjson.Error
	var inv *agents.InvalidError
	switch {
	case errors.As(err, &he):
		return he.Status, he.Msg
	case errors.As(err, &inv):
		return http.StatusBadRequest, inv.Error()
	case errors.Is(err, auth.ErrMissing), errors.Is(err, auth.ErrInvalid):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, agents.ErrState), errors.Is(err, agents.ErrNotRunning), errors.Is(err, agents.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, agents.ErrAgentLimit):
		return http.StatusTooManyRequests, err.Error()
	case errors.Is(err, agents.ErrProvisionTimeout):
		return http.StatusGatewayTimeout, err.Error()
	case errors.Is(err, agents.ErrCapacity), errors.Is(err, agents.ErrNoPorts),
		errors.Is(err, agents.ErrStartFailed), errors.Is(err, agents.ErrStopFailed), errors.Is(err, agents.ErrOtherNode):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not found"
	}
	return http.StatusInternalServerError, "internal error"
}

// missing turns a store miss into the resource's 404; a foreign id reads
// exactly like a missing one.
func missing(what string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &httpjson.Error{Status: http.StatusNotFound, Msg: what + " not found", Err: err}
	}
	return err
}

// ts formats a time as the seed does: ISO 8601, UTC, milliseconds.
func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				httpjson.WriteError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
