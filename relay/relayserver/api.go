package relayserver

import (
	"net/http"
	"strconv"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/trust"
)

// Search paging bounds.
const (
	defaultSearchLimit = 20
	maxSearchLimit     = 100
	maxQueryLen        = 500
)

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /ws/announce", s.handleAnnounce)
	m.HandleFunc("GET /ws/input", s.handleInput)
	lookup, search := s.metrics.timed("lookup", s.handleLookup), s.metrics.timed("search", s.handleSearch)
	m.HandleFunc("GET /api/relay/agents/{address}", lookup)
	m.HandleFunc("GET /api/agents/{address}", lookup)
	m.HandleFunc("GET /api/agents", search)
	m.HandleFunc("GET /api/relay/agents", search)
	m.HandleFunc("GET /health", s.metrics.timed("health", s.handleHealth))
	m.HandleFunc("GET /ready", s.metrics.timed("ready", s.handleReady))
	m.Handle("GET /metrics", s.metrics.timed("metrics", s.metrics.handler().ServeHTTP))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	})
	// Every request gets an X-Request-Id (the caller's or a fresh one),
	// a server span and an access log line; the relay's own histogram
	// (agenthost_relay_http_request_duration_seconds) keeps its routes.
	s.mux = obs.Middleware(obs.HTTPConfig{Logger: s.log, Quiet: []string{"/health", "/ready", "/metrics"}}, m)
}

// writeJSON writes v with status. The API is public and read-only, so any
// origin may read it (browser clients resolve agents through it).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	httpjson.Write(w, status, v)
}

func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	addr, err := trust.NormalizeAddress(r.PathValue("address"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "not an agent address: want 0x and 64 hex characters"})
		return
	}
	info, ok := s.reg.lookup(addr)
	if !ok {
		s.metrics.lookups.inc("not_found")
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "agent not found"})
		return
	}
	s.metrics.lookups.inc("found")
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset := defaultSearchLimit, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit must be a positive integer"})
			return
		}
		limit = min(n, maxSearchLimit)
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "offset must be a non-negative integer"})
			return
		}
		offset = n
	}
	query := q.Get("q")
	if len(query) > maxQueryLen {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "q is too long (max 500 bytes)"})
		return
	}
	s.metrics.searches.inc("")
	writeJSON(w, http.StatusOK, s.reg.search(query, limit, offset))
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"status":          "healthy",
		"agents_online":   s.reg.online(),
		"client_sessions": s.sessions.Load(),
		"uptime":          int64(s.now().Sub(s.start).Seconds()),
	})
}

// handleReady answers 200 while the relay takes connections, 503 once its
// shutdown has begun. It has no start-up work to wait for: everything it
// knows is in memory, and agents announce again when they reconnect.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.shuttingDown() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting_down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
