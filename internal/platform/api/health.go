package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/platform/store"
)

// healthTimeout bounds /health's database check.
const healthTimeout = 2 * time.Second

// health is GET /health: 200 {"status": "ok", "database": "ok"} when the
// database answers a read within healthTimeout, else 503 with
// "unavailable" and the reason; "sandbox" says whether the agents' tools
// are sandboxed.
func (s *Server) health(sandbox string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		// A read of an id nobody has: the database answers "not found".
		_, err := s.cfg.Store.FindAgent(ctx, "health-check-no-such-agent")
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.WarnContext(r.Context(), "health: the database does not answer", "err", err)
			httpjson.Write(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "sandbox": sandbox,
				"database": "unavailable", "error": "the database does not answer: " + err.Error()})
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok", "sandbox": sandbox, "database": "ok"})
	}
}

// ready is GET /ready: 200 {"status": "ready"} once the platform serves
// its agents, 503 {"status": "starting"} while it re-attaches the
// runtimes of an earlier process, 503 {"status": "stopping"} during
// shutdown. Load balancers route to ready replicas only.
func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	state := "ready"
	if s.cfg.Ready != nil {
		state = s.cfg.Ready()
	}
	code := http.StatusOK
	if state != "ready" {
		code = http.StatusServiceUnavailable
	}
	httpjson.Write(w, code, map[string]string{"status": state})
}
