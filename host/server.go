// Package host puts an agent on the network: one call serves it over HTTP,
// WebSocket and SSE, with durable sessions, uploads, an interactive /docs
// page and the wire protocol existing clients speak (protocol.md §2–3).
//
//	host.Serve(ctx, func() (*agent.Agent, error) { return agent.New("translator", ...) })
//
// Every request runs on a fresh agent from the factory, so tools with state
// are never shared. Settings come from options, then .co/host.yaml, then
// defaults; see docs/host.md.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/internal/store/sqlite"
	"github.com/agenthost/agenthost/internal/version"
	"github.com/agenthost/agenthost/llm"
	"github.com/agenthost/agenthost/trust"
	"github.com/joho/godotenv"
)

// Factory builds a fresh agent for one request.
type Factory func() (*agent.Agent, error)

// runtime is what a reload swaps: the configuration and everything derived
// from it. Runs read it once at their start.
type runtime struct {
	cfg        *Config
	factory    Factory
	gate       Gate
	needs      func(llm.ToolCall) bool
	approveFor time.Duration
	name       string
	model      string
	tools      []string
	toolDescs  map[string]string
}

func (rt *runtime) newAgent() (*agent.Agent, error) { return rt.factory() }

func (rt *runtime) toolDescription(name string) string { return rt.toolDescs[name] }

// Server is a hosted agent: an http.Handler plus the session engine, store
// and identity behind it. Build it with New; Serve runs it on a listener;
// Shutdown stops it.
type Server struct {
	set     settings
	user    Factory
	log     *slog.Logger
	now     func() time.Time
	rt      atomic.Pointer[runtime]
	eng     *hostEngine
	st      store.Store
	own     bool
	id      *trust.Identity
	started time.Time
	handler http.Handler

	bg     context.Context
	stopBg context.CancelFunc
	bgWG   sync.WaitGroup

	connsDone      chan struct{}
	closeConnsOnce sync.Once

	srvMu    sync.Mutex
	srvs     []*http.Server
	shutOnce sync.Once
	shutErr  error
	restart  chan int // reload asks Serve to move to a new port

	relay hostRelay // the relay announcer (relay.go)
}

// New builds a hosted agent from a factory and options. It reads host.yaml,
// loads .env into the environment (without overriding variables already
// set), opens the session store, marks sessions left running by a previous
// process as interrupted, and builds one agent to check the configuration.
func New(newAgent Factory, opts ...Option) (*Server, error) {
	if newAgent == nil {
		return nil, errors.New("host: nil agent factory")
	}
	s := &Server{user: newAgent, connsDone: make(chan struct{}), restart: make(chan int, 1)}
	for _, o := range opts {
		o(&s.set)
	}
	s.log = s.set.logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.now = s.set.now
	if s.now == nil {
		s.now = time.Now
	}
	if s.set.dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("host: %w", err)
		}
		s.set.dir = wd
	}
	s.started = s.now()
	cfg, err := s.loadConfig()
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	if env := filepath.Join(s.set.dir, ".env"); fileExists(env) {
		if err := godotenv.Load(env); err != nil {
			return nil, fmt.Errorf("host: loading %s: %w", env, err)
		}
	}
	id, created, err := trust.LoadOrCreateIdentity(cfg.CoDir)
	if err != nil {
		return nil, fmt.Errorf("host: identity: %w", err)
	}
	if created {
		s.log.Info("created the agent's identity", "address", id.Address(), "dir", cfg.CoDir)
	}
	s.id = id
	s.st, s.own = s.set.store, false
	if s.st == nil {
		st, err := sqlite.Open(context.Background(), filepath.Join(cfg.CoDir, sqlite.FileName))
		if err != nil {
			return nil, fmt.Errorf("host: %w", err)
		}
		s.st, s.own = st, true
	}
	rt, err := s.buildRuntime(cfg)
	if err != nil {
		s.closeStore()
		return nil, fmt.Errorf("host: %w", err)
	}
	s.rt.Store(rt)
	if s.eng, err = newEngine(s, s.st, cfg.Workers, cfg.Queue); err == nil {
		// Sessions a previous process left running are interrupted.
		err = s.eng.core.Recover(context.Background())
	}
	if err != nil {
		s.closeStore()
		return nil, fmt.Errorf("host: %w", err)
	}
	s.handler = s.routes()
	s.bg, s.stopBg = context.WithCancel(context.Background())
	sweep := s.set.sweep
	if sweep <= 0 {
		sweep = time.Minute
	}
	s.bgWG.Add(1)
	go func() { defer s.bgWG.Done(); s.eng.sweep(s.bg, sweep) }()
	s.startRelay()
	if cfg.Reload {
		if err := s.watch(); err != nil {
			s.log.Warn("reload disabled: cannot watch files", "err", err)
		}
	}
	return s, nil
}

// loadConfig resolves options, host.yaml and defaults.
func (s *Server) loadConfig() (*Config, error) {
	path, _ := s.configPath()
	explicit := s.set.configPath != nil && *s.set.configPath != ""
	return loadConfig(&s.set.code, path, explicit, s.set.dir)
}

// buildRuntime derives the per-request factory from the configuration and
// builds one agent to learn its name, model and tools (and to fail now,
// not on the first request, when the configuration is wrong).
func (s *Server) buildRuntime(cfg *Config) (*runtime, error) {
	rt := &runtime{cfg: cfg, needs: s.set.needs, approveFor: s.set.approveFor, gate: s.set.gate, toolDescs: map[string]string{}}
	if rt.approveFor <= 0 {
		rt.approveFor = 10 * time.Minute
	}
	switch cfg.Trust {
	case TrustOpen, TrustCareful, TrustStrict, TrustCustom:
	default:
		return nil, fmt.Errorf("%w: trust %q: want open, careful or strict, a policy mapping, a policy in words or a policy file", ErrConfig, cfg.Trust)
	}
	var over []agent.Option
	if cfg.Model != "" {
		over = append(over, agent.WithModel(cfg.Model))
	}
	if cfg.SystemPrompt != "" {
		over = append(over, agent.WithSystemPrompt(cfg.SystemPrompt))
	}
	user := s.user
	rt.factory = func() (*agent.Agent, error) {
		a, err := user()
		if err != nil {
			return nil, err
		}
		if a == nil {
			return nil, errors.New("the agent factory returned nil")
		}
		if len(over) == 0 {
			return a, nil
		}
		return a.Derive(over...)
	}
	a, err := rt.factory()
	if err != nil {
		return nil, fmt.Errorf("building the agent: %w", err)
	}
	rt.name, rt.model, rt.tools = a.Name(), a.Model().Name(), a.ToolNames()
	for _, t := range a.Tools() {
		sp := t.Spec()
		rt.toolDescs[sp.Name] = sp.Description
	}
	if rt.gate == nil {
		build := s.set.gateBuilder
		if build == nil {
			build = s.trustGateBuilder
		}
		g, err := build(GateEnv{Config: cfg, Store: s.st, Identity: s.id, Logger: s.log, Model: a.Model(), Now: s.now})
		if err != nil {
			return nil, fmt.Errorf("trust: %w", err)
		}
		if g == nil {
			return nil, errors.New("trust: the gate builder returned no gate")
		}
		rt.gate = g
	}
	return rt, nil
}

func (s *Server) current() *runtime { return s.rt.Load() }

// Config returns the configuration in force.
func (s *Server) Config() Config { return *s.current().cfg }

// Address returns the agent's identity address.
func (s *Server) Address() string { return s.id.Address() }

// Handler returns the HTTP handler of the whole host API.
func (s *Server) Handler() http.Handler { return s.handler }

// Handler is New for embedding the host in another Go server (the seed's
// exported-app deployment). If the configuration fails, the error is
// logged and every request is answered 500 with it, so a broken app is
// never served silently; use New to handle the error yourself.
func Handler(newAgent Factory, opts ...Option) http.Handler {
	s, err := New(newAgent, opts...)
	if err != nil {
		var set settings
		for _, o := range opts {
			o(&set)
		}
		log := set.logger
		if log == nil {
			log = slog.Default()
		}
		log.Error("host configuration failed; answering 500", "err", err)
		msg := err.Error()
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: "host configuration failed: " + msg})
		})
	}
	return s.Handler()
}

// Serve hosts the agent until ctx ends: it builds the server, listens on
// the configured port, prints the banner and "Waiting for tasks…", and on
// cancellation shuts down gracefully (runs get the shutdown grace period to
// finish, then are interrupted).
func Serve(ctx context.Context, newAgent Factory, opts ...Option) error {
	s, err := New(newAgent, opts...)
	if err != nil {
		return err
	}
	port := s.Config().Port
	for {
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			s.Shutdown(context.Background())
			return fmt.Errorf("host: %w", err)
		}
		out := s.set.banner
		if out == nil {
			out = os.Stderr
		}
		s.PrintBanner(out, ln.Addr())
		fmt.Fprintf(out, "Open http://localhost:%d/docs to talk to the agent in a browser.\n", ln.Addr().(*net.TCPAddr).Port)
		fmt.Fprintln(out, "Waiting for tasks…")
		next, err := s.serveUntil(ctx, ln)
		if next == 0 || err != nil {
			return err
		}
		s.log.Info("port changed; moving the listener", "from", port, "to", next)
		port = next
	}
}

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	_, err := s.serveUntil(ctx, ln)
	return err
}

// serveUntil serves on ln until ctx ends (then shuts down) or a reload
// asks for another port, which it returns without stopping the host.
func (s *Server) serveUntil(ctx context.Context, ln net.Listener) (newPort int, err error) {
	to := s.set.timeouts.withDefaults()
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: to.ReadHeader, ReadTimeout: to.Read, IdleTimeout: to.Idle,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.srvMu.Lock()
	s.srvs = append(s.srvs, hs)
	s.srvMu.Unlock()
	s.relayListening(ln.Addr())
	defer s.relayStopped(ln.Addr())
	capped := newCapListener(ln, func() int { return s.current().cfg.MaxConnsPerIP })
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(capped) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return 0, nil
		}
		return 0, fmt.Errorf("host: %w", err)
	case port := <-s.restart:
		// Only the listener moves: open connections and runs go on.
		ln.Close()
		<-errc
		return port, nil
	case <-ctx.Done():
	}
	grace := s.set.grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return 0, s.Shutdown(sctx)
}

// Shutdown stops the host: new runs are refused, running ones get until
// ctx ends to finish and are then interrupted (and recorded so), WebSocket
// clients are disconnected, and the store is closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() {
		s.eng.shutdown(ctx)
		s.srvMu.Lock()
		srvs := s.srvs
		s.srvMu.Unlock()
		s.closeConns()
		for _, hs := range srvs {
			hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := hs.Shutdown(hctx); err != nil {
				hs.Close()
			}
			cancel()
		}
		if s.stopBg != nil {
			s.stopBg()
		}
		s.bgWG.Wait()
		s.shutErr = s.closeStore()
	})
	return s.shutErr
}

func (s *Server) closeStore() error {
	if s.own && s.st != nil {
		return s.st.Close()
	}
	return nil
}

// info is GET /info (protocol.md §2).
func (s *Server) info() map[string]any {
	rt := s.current()
	cfg := rt.cfg
	examples := cfg.Examples
	if examples == nil {
		examples = []string{}
	}
	return map[string]any{
		"name":     rt.name,
		"address":  s.id.Address(),
		"tools":    rt.tools,
		"model":    rt.model,
		"trust":    cfg.Trust,
		"version":  version.String(),
		"summary":  cfg.Summary,
		"examples": examples,
		"accepted_inputs": map[string]any{
			"text":   true,
			"images": true,
			"files": map[string]any{
				"max_file_size_mb":      cfg.MaxFileSizeMB,
				"max_files_per_request": cfg.MaxFilesPerRequest,
			},
		},
		"protocol": map[string]any{"name": "oip", "version": "0.1", "websocket_path": "/ws"},
	}
}

// LoadConfig resolves options, host.yaml and defaults as New would,
// without starting anything: commands use it to build their agent from the
// configuration before hosting it.
func LoadConfig(opts ...Option) (*Config, error) {
	s := &Server{}
	for _, o := range opts {
		o(&s.set)
	}
	if s.set.dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("host: %w", err)
		}
		s.set.dir = wd
	}
	cfg, err := s.loadConfig()
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	return cfg, nil
}
