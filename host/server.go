// Package host puts an agent on the network: one call serves it over HTTP,
// WebSocket and SSE, with durable sessions, uploads, an interactive /docs
// page and the wire protocol existing clients speak (docs/protocol.md §2–3).
//
//	host.Serve(ctx, func() (*agent.Agent, error) { return agent.New("translator", ...) })
//
// Programs that own their listener or HTTP server use the lifecycle
// instead: New opens the data directory and builds the Server without
// starting anything; Serve(ctx, ln) serves it on a listener, or Start
// begins its background work so that the Server, an http.Handler, can be
// mounted in another server; Shutdown(ctx) stops everything New and Start
// opened, goroutines and database included.
//
// Every request runs on a fresh agent from the factory, so tools with state
// are never shared. Settings come from options, then .co/host.yaml, then
// defaults; see docs/host.md. The host reads API keys from the process
// environment and never changes it (the agenthost command loads .env).
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
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/internal/store/sqlite"
	"github.com/agenthost/agenthost/internal/version"
	"github.com/agenthost/agenthost/llm"
	"github.com/agenthost/agenthost/trust"
)

// Factory builds a fresh agent for one request.
type Factory func() (*agent.Agent, error)

// Source is what a host serves: an agent, used as a template for every
// request (an Agent is immutable and safe for concurrent runs; each
// session keeps its own conversation), or a factory that builds a fresh
// agent per request — use a factory when tools hold state of their own
// (open files, a browser) that requests must not share.
type Source interface {
	*agent.Agent | ~func() (*agent.Agent, error)
}

// factoryOf turns a Source into a Factory.
func factoryOf[S Source](src S) Factory {
	switch v := any(src).(type) {
	case *agent.Agent:
		if v == nil {
			return nil
		}
		return func() (*agent.Agent, error) { return v.Derive() }
	case Factory:
		return v
	case func() (*agent.Agent, error):
		return v
	}
	// Another named func type with Factory's signature.
	v := reflect.ValueOf(src)
	if v.IsNil() {
		return nil
	}
	return v.Convert(reflect.TypeFor[Factory]()).Interface().(Factory)
}

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
// and identity behind it. Build it with New; Serve runs it on a listener,
// or Start readies it for a server of your own; Shutdown stops it. A
// Server answers 503 until it is started.
type Server struct {
	set     settings
	user    Factory
	log     *slog.Logger
	now     func() time.Time
	lock    *coLock // the .co directory, ours while the Server lives
	rt      atomic.Pointer[runtime]
	eng     *hostEngine
	st      store.Store
	id      *trust.Identity
	started time.Time
	handler http.Handler

	// state is stateNew, stateRunning or stateClosed; lifeMu serializes
	// Start and Shutdown.
	state  atomic.Int32
	lifeMu sync.Mutex

	bg     context.Context // set by Start (under relay.ctl); ends at Shutdown
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

	mcp *mcpServers // mcp_servers, open from New to Shutdown (mcp.go)
	obs *observability

	metricsAddr net.Addr // the metrics listener's (under srvMu)
}

// The lifecycle states of a Server.
const (
	stateNew int32 = iota
	stateRunning
	stateClosed
)

// ErrNotStarted is the answer (503) to requests that reach a Server before
// Start or Serve.
var ErrNotStarted = errors.New("host not started: call Server.Start (or Serve) before serving requests")

// New builds a hosted agent from an agent or a factory (see Source) and
// options. It reads host.yaml,
// loads or creates the agent's identity, opens the session store (ctx
// bounds the opening), marks sessions left running by a previous process
// as interrupted, and builds one agent to check the configuration. It
// starts no background work (only the database it opens has goroutines of
// its own) and does not touch the process environment: Serve or Start
// begin serving, and Shutdown releases what New opened, so call it even
// for a Server that never started.
func New[S Source](ctx context.Context, src S, opts ...Option) (*Server, error) {
	newAgent := factoryOf(src)
	if newAgent == nil {
		return nil, errors.New("host: nil agent or agent factory")
	}
	s := &Server{user: newAgent, connsDone: make(chan struct{}), restart: make(chan int, 1)}
	for _, o := range opts {
		o(&s.set)
	}
	s.log = s.set.logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = obs.Logger(s.log)
	s.obs = newObservability(func() string { return s.current().name })
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
	lock, err := lockCoDir(cfg.CoDir)
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	s.lock = lock
	id, created, err := trust.LoadOrCreateIdentity(cfg.CoDir)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("host: identity: %w", err)
	}
	if created {
		s.log.Info("created the agent's identity", "address", id.Address(), "dir", cfg.CoDir)
	}
	s.id = id
	st, err := sqlite.Open(ctx, filepath.Join(cfg.CoDir, sqlite.FileName))
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("host: %w", err)
	}
	s.st = st
	s.obs.reg.MustRegister(st.Collectors()...)
	if s.mcp, err = openMCP(ctx, cfg.MCPServers, s.set.dir, s.log); err != nil {
		s.closeStore()
		return nil, fmt.Errorf("host: %w", err)
	}
	rt, err := s.buildRuntime(cfg)
	if err != nil {
		s.closeStore()
		return nil, fmt.Errorf("host: %w", err)
	}
	s.rt.Store(rt)
	if s.eng, err = newEngine(s, s.st, cfg.Workers, cfg.Queue); err == nil {
		// Sessions a previous process left running are interrupted.
		err = s.eng.core.Recover(ctx)
		s.obs.runs.Engine(s.eng.core)
	}
	if err != nil {
		s.closeStore()
		return nil, fmt.Errorf("host: %w", err)
	}
	// The state check sits inside the middleware, so that the 503s before
	// Start and after Shutdown carry an X-Request-Id and an access log
	// line like every other answer.
	routes := s.routes()
	s.handler = obs.Middleware(obs.HTTPConfig{Metrics: obs.NewHTTPMetrics(s.obs.reg), Logger: s.log, Quiet: []string{"/health"}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveState(w, r, routes) }))
	return s, nil
}

// Start begins the Server's background work — deleting expired sessions
// and uploads, announcing on the relay when one is configured, watching
// the configuration under reload — and lets requests in. Serve calls it;
// a program that mounts the Server in its own http.Server calls it first.
// It does no blocking I/O (the relay is dialled in the background) but
// opens the metrics listener WithMetricsAddr asks for, is a no-op on a
// running Server, and fails with ErrShuttingDown after Shutdown.
func (s *Server) Start() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	switch s.state.Load() {
	case stateRunning:
		return nil
	case stateClosed:
		return fmt.Errorf("host: start: %w", ErrShuttingDown)
	}
	s.relay.ctl.Lock()
	s.bg, s.stopBg = context.WithCancel(context.Background())
	s.relay.ctl.Unlock()
	sweep := s.set.sweep
	if sweep <= 0 {
		sweep = time.Minute
	}
	if err := s.startMetrics(); err != nil {
		s.stopBg()
		return err
	}
	s.bgWG.Add(1)
	go func() { defer s.bgWG.Done(); s.eng.sweep(s.bg, sweep) }()
	s.startRelay()
	if s.current().cfg.Reload {
		if err := s.watch(); err != nil {
			s.log.Warn("reload disabled: cannot watch files", "err", err)
		}
	}
	s.state.Store(stateRunning)
	return nil
}

// ServeHTTP serves the whole host API. Before Start it answers 503
// (ErrNotStarted), after Shutdown 503 (ErrShuttingDown).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// serveState answers 503 unless the Server runs, else routes the request.
func (s *Server) serveState(w http.ResponseWriter, r *http.Request, routes http.Handler) {
	switch s.state.Load() {
	case stateNew:
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: ErrNotStarted.Error()})
		return
	case stateClosed:
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: ErrShuttingDown.Error()})
		return
	}
	routes.ServeHTTP(w, r)
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
	if o := s.mcp.option(); o != nil {
		over = append(over, o)
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
		g, err := build(GateEnv{Config: cfg, store: s.st, Identity: s.id, Logger: s.log, Model: a.Model(), Now: s.now})
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

// Serve hosts the agent until ctx ends: it builds the server (New),
// listens on the configured port, prints the banner and "Waiting for
// tasks…", and on cancellation shuts down gracefully (runs get the
// shutdown grace period to finish, then are interrupted). When it returns,
// everything it started has stopped.
func Serve[S Source](ctx context.Context, src S, opts ...Option) error {
	s, err := New(ctx, src, opts...)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		s.Shutdown(context.Background())
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

// Serve starts the Server (Start) and serves on ln until ctx ends, then
// shuts down gracefully (Shutdown with the shutdown grace period). ln is
// closed when Serve returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.Start(); err != nil {
		ln.Close()
		return err
	}
	_, err := s.serveUntil(ctx, ln)
	return err
}

// serveUntil serves on ln until ctx ends (then shuts down) or a reload
// asks for another port, which it returns without stopping the host.
func (s *Server) serveUntil(ctx context.Context, ln net.Listener) (newPort int, err error) {
	to := s.set.timeouts.withDefaults()
	hs := &http.Server{Handler: s, ReadHeaderTimeout: to.ReadHeader, ReadTimeout: to.Read, IdleTimeout: to.Idle,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.srvMu.Lock()
	s.srvs = append(s.srvs, hs)
	s.srvMu.Unlock()
	s.relayListening(ln.Addr())
	s.lock.listening(ln.Addr())
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
	if s.set.notice != nil {
		s.set.notice(grace, s.ActiveRuns())
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return 0, s.Shutdown(sctx)
}

// Shutdown stops the host: new runs are refused, running ones get until
// ctx ends to finish and are then interrupted (and recorded so), WebSocket
// clients are disconnected, the servers Serve started are shut down, the
// background work Start began has returned, and the store is closed. It is
// safe to call more than once, and on a Server that never started.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
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
		s.relay.ctl.Lock()
		if s.stopBg != nil {
			s.stopBg()
		}
		s.relay.ctl.Unlock()
		s.bgWG.Wait()
		s.state.Store(stateClosed)
		s.shutErr = s.closeStore()
	})
	return s.shutErr
}

func (s *Server) closeStore() error {
	defer s.lock.release()
	mcpErr := s.mcp.close()
	if s.st != nil {
		return errors.Join(s.st.Close(), mcpErr)
	}
	return mcpErr
}

// info is GET /info (docs/protocol.md §2).
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
		"mcp":      map[string]any{"path": MCPPath, "transport": "streamable-http", "tool": "ask"},
		"a2a":      map[string]any{"agent_card": A2AAgentCardPath, "url": A2APath},
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
