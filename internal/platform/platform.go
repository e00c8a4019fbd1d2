// Package platform is `agenthost platform`: a multi-tenant control plane
// that provisions agents, each in its own runtime, behind the REST API of
// seed 003. This package wires the parts and owns the server's lifecycle:
//
//	store/    persistence (SQLite by default, PostgreSQL for replicas)
//	secrets/  the master key, AES-256-GCM at rest, agents' environments
//	auth/     API tokens
//	agents/   provisioning, supervision and reconciliation of runtimes
//	api/      the /api/v1 HTTP server (JSON through internal/httpjson)
//
// The lifecycle is New → Serve → Shutdown, like the other agenthost
// servers; tests run it in-process on 127.0.0.1:0.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthost/agenthost/internal/coderuntime"
	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/api"
	"github.com/agenthost/agenthost/internal/platform/auth"
	"github.com/agenthost/agenthost/internal/platform/capability"
	"github.com/agenthost/agenthost/internal/platform/secrets"
	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/platform/store/postgres"
	"github.com/agenthost/agenthost/internal/platform/store/sqlite"
	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/web/session"
)

// DataDirEnv overrides the default data directory (--data wins over it).
const DataDirEnv = "AGENTHOST_DATA"

// DefaultDataDir is where the platform keeps its state unless told
// otherwise, the same whatever the working directory, so that `agenthost
// platform token create` and `agenthost platform` run from different
// directories meet the same store: $AGENTHOST_DATA, else /var/lib/agenthost
// for root (a service, a container), else $XDG_DATA_HOME/agenthost
// (~/.local/share/agenthost).
func DefaultDataDir(getenv func(string) string, euid int) string {
	if d := getenv(DataDirEnv); d != "" {
		return d
	}
	if euid == 0 {
		return "/var/lib/agenthost"
	}
	if d := getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "agenthost")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "agenthost")
	}
	return ".agenthost"
}

// DatabaseFile is the SQLite database's name in the data directory.
const DatabaseFile = "platform.db"

// Config configures a Server.
type Config struct {
	// DataDir holds the SQLite database, the master key file and the
	// process driver's runtimes. Default: DefaultDataDir.
	DataDir string
	// Database is a postgres:// DSN; empty means SQLite in DataDir.
	Database string
	// Driver runs the runtimes. Required.
	Driver runtime.Driver
	// PublicURL is the base URL clients reach the platform at, used in the
	// agent and session URLs it returns. Default: from the listener.
	PublicURL string
	// AdvertiseURL is the base URL the other replicas sharing the store
	// reach this node at, to forward requests for the agents whose
	// runtimes it runs. Default: AdvertiseURLFor the listener (loopback
	// when it listens on all interfaces, so replicas on other hosts need
	// it set).
	AdvertiseURL string
	// Getenv reads the environment (AGENTHOST_MASTER_KEY). Default
	// os.Getenv.
	Getenv func(string) string
	// Logger receives the platform's logs. Default slog.Default().
	Logger *slog.Logger
	// Agents configures the agent manager; its Store, Secrets, Box, Driver,
	// Logger, Now and NewID are filled in by New.
	Agents agents.Config
	// FrameAncestors is who may embed session pages (CSP frame-ancestors
	// source list). Default: $AGENTHOST_FRAME_ANCESTORS, else "*".
	FrameAncestors string
	// SessionPage serves session pages once their capability checked;
	// nil is the web UI's page (internal/web/session).
	SessionPage http.Handler
	// RuntimeTimeout bounds a call forwarded to a runtime (default 30 s).
	RuntimeTimeout time.Duration
	// RuntimeTransport carries the calls to runtimes' control APIs
	// (default: a transport for loopback); a test injects failures here.
	RuntimeTransport http.RoundTripper
	// MaxUploadFile and MaxUploadTotal override the seed's upload limits
	// (50 MB per file, 100 MB per agent).
	MaxUploadFile, MaxUploadTotal int64
	// TokenTouchInterval throttles last-used writes per token. Default 1 min.
	TokenTouchInterval time.Duration
	// InsecureNoSandbox says that the agents' tools run without the
	// sandbox (`agenthost platform --insecure-no-sandbox`): the platform
	// warns at start and /health says "sandbox": "disabled".
	InsecureNoSandbox bool
	// Now and NewID are the clock and id seams. Defaults time.Now, ids.New.
	Now   func() time.Time
	NewID func() string
}

// Server is a running platform.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  store.Store
	agents *agents.Manager
	api    *api.Server
	http   *http.Server
	// metrics are served by MetricsHandler; metricsHTTP, when
	// Config.MetricsAddr is set, serves them.
	metrics     *metrics
	metricsHTTP *http.Server

	mu         sync.Mutex
	baseURL    string
	served     bool
	reconciled chan struct{}
	shutdown   sync.Once
	stopping   atomic.Bool
}

// readiness is GET /ready's state: starting until the runtimes of an
// earlier process are re-attached, ready, then stopping once Shutdown
// begins.
func (s *Server) readiness() string {
	if s.stopping.Load() {
		return "stopping"
	}
	select {
	case <-s.reconciled:
		return "ready"
	default:
		return "starting"
	}
}

// OpenStore opens the platform's store: PostgreSQL when dsn is set,
// otherwise SQLite in dataDir.
func OpenStore(ctx context.Context, dataDir, dsn string) (store.Store, error) {
	if dsn != "" {
		if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
			return nil, errors.New("--database: want a postgres:// URL (leave it empty for SQLite in the data directory)")
		}
		return postgres.Open(ctx, dsn)
	}
	if dataDir == "" {
		dataDir = DefaultDataDir(os.Getenv, os.Geteuid())
	}
	return sqlite.Open(ctx, filepath.Join(dataDir, DatabaseFile))
}

// PrepareDataDir makes the data directory (mode 0711) or sets an
// existing one's mode to 0711: traversable, not listable, so that runtimes
// under uids of their own reach their directories below it and nothing
// else (its files are 0600). Call it before making a process driver whose
// root is inside it, as New does.
func PrepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("platform: data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("platform: data directory: %w", err)
	}
	return nil
}

// New opens the store, loads the master key and builds the server. The
// runtimes of an earlier platform process are reconciled when Serve starts.
func New(cfg Config) (*Server, error) {
	if cfg.Driver == nil {
		return nil, errors.New("platform: a runtime driver is required")
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir(os.Getenv, os.Geteuid())
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = ids.New
	}
	if cfg.TokenTouchInterval <= 0 {
		cfg.TokenTouchInterval = time.Minute
	}
	if cfg.Agents.Node == "" {
		// A SQLite database belongs to one host: one node, whatever the
		// hostname becomes. Replicas sharing PostgreSQL need distinct names.
		cfg.Agents.Node = "local"
		if cfg.Database != "" {
			cfg.Agents.Node, _ = os.Hostname()
		}
	}
	if err := PrepareDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.InsecureNoSandbox {
		cfg.Logger.Warn("INSECURE: the sandbox is disabled (--insecure-no-sandbox): every agent's tools run unsandboxed and can read what the runtimes' user can; for one trusted user on a development machine only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := OpenStore(ctx, cfg.DataDir, cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	s, err := build(ctx, cfg, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

func build(ctx context.Context, cfg Config, st store.Store) (*Server, error) {
	log := cfg.Logger
	key, source, err := secrets.LoadKey(cfg.Getenv, cfg.DataDir, log)
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	box, err := secrets.NewBox(key)
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	if err := secrets.VerifyKey(ctx, st, box); err != nil {
		return nil, fmt.Errorf("platform: master key from %s: %w", source, err)
	}
	sec := secrets.NewService(st, box, cfg.Now, cfg.NewID)

	ac := cfg.Agents
	if ac.Connect == nil {
		ac.Connect = connectCoding
	}
	if cfg.SessionPage == nil {
		cfg.SessionPage = session.Handler()
	}
	if cfg.FrameAncestors == "" {
		cfg.FrameAncestors = strings.TrimSpace(cfg.Getenv("AGENTHOST_FRAME_ANCESTORS"))
	}
	ac.Store, ac.Secrets, ac.Box, ac.Driver, ac.Logger, ac.Now, ac.NewID = st, sec, box, cfg.Driver, log, cfg.Now, cfg.NewID
	var mgr *agents.Manager
	met := newMetrics(st, func() string { return mgr.Node() })
	ac.Observer = met
	mgr, err = agents.New(ac)
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	s := &Server{cfg: cfg, log: log, store: st, agents: mgr, metrics: met, reconciled: make(chan struct{}), baseURL: strings.TrimSuffix(cfg.PublicURL, "/")}
	s.api = api.New(api.Config{
		Store: st, Auth: auth.NewAuthenticator(st, cfg.Now, cfg.TokenTouchInterval, log),
		Agents: mgr, Secrets: sec, Logger: log, Now: cfg.Now, NewID: cfg.NewID, BaseURL: s.BaseURL,
		Capabilities: capability.New(key), ForwardKey: api.ForwardKey(key), FrameAncestors: cfg.FrameAncestors, SessionPage: cfg.SessionPage,
		TempDir: filepath.Join(cfg.DataDir, "tmp"), RuntimeTimeout: cfg.RuntimeTimeout, RuntimeTransport: cfg.RuntimeTransport, SandboxDisabled: cfg.InsecureNoSandbox,
		MaxUploadFile: cfg.MaxUploadFile, MaxUploadTotal: cfg.MaxUploadTotal, HTTPMetrics: met.http,
		Ready: s.readiness,
	})
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	s.http = &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// API is the /api/v1 server, where later routes register.
func (s *Server) API() *api.Server { return s.api }

// Agents is the agent manager.
func (s *Server) Agents() *agents.Manager { return s.agents }

// Store is the platform's store.
func (s *Server) Store() store.Store { return s.store }

// BaseURL is the public base URL, without a trailing slash.
func (s *Server) BaseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// Reconciled is closed once the runtimes of an earlier platform process
// have been re-attached or restarted.
func (s *Server) Reconciled() <-chan struct{} { return s.reconciled }

// Serve serves on ln until Shutdown is called or ctx ends, reconciling
// the persisted agents in the background meanwhile. It returns nil after a
// clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.baseURL == "" {
		s.baseURL = URLFor(ln.Addr())
	}
	s.served = true
	s.mu.Unlock()
	adv := strings.TrimSuffix(s.cfg.AdvertiseURL, "/")
	if adv == "" {
		adv = AdvertiseURLFor(ln.Addr())
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := s.store.PutNode(pctx, s.agents.Node(), adv, s.cfg.Now())
	cancel()
	if err != nil {
		return fmt.Errorf("platform: recording this node's URL: %w", err)
	}
	s.log.Info("platform node", "node", s.agents.Node(), "advertise", adv)
	go func() {
		defer close(s.reconciled)
		if err := s.agents.Reconcile(ctx); err != nil {
			s.log.Error("reconciling agents", "err", err)
		}
	}()
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(sctx)
	})
	defer stop()
	err = s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// URLFor is the base URL of a listener's address: an unspecified address
// becomes localhost.
func URLFor(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// AdvertiseURLFor is the default advertised URL of a listener: its own
// address, with an unspecified or loopback host as 127.0.0.1 (reachable
// by replicas on the same host only).
func AdvertiseURLFor(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); host == "" || host == "localhost" || ip != nil && (ip.IsUnspecified() || ip.IsLoopback()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Shutdown stops accepting requests, waits for those in flight, stops
// supervising runtimes (which keep running, for the next process to
// re-attach) and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutdown.Do(func() {
		s.stopping.Store(true)
		s.api.CloseStreams()
		err = errors.Join(s.http.Shutdown(ctx), s.agents.Close(ctx))
		s.mu.Lock()
		served := s.served
		s.mu.Unlock()
		if served { // the reconciler ends quickly once the agents are closed
			select {
			case <-s.reconciled:
			case <-ctx.Done():
				err = errors.Join(err, ctx.Err())
			}
		}
		err = errors.Join(err, s.store.Close())
	})
	return err
}

// codingClient is the coding runtime's client as the platform's
// agents.RuntimeClient.
type codingClient struct{ *coderuntime.Client }

var _ agents.RuntimeClient = codingClient{}

// Status implements agents.RuntimeClient: the runtime's status, each
// session's busy included.
func (c codingClient) Status(ctx context.Context) (agents.RuntimeStatus, error) {
	st, err := c.RuntimeStatus(ctx)
	if err != nil {
		return agents.RuntimeStatus{}, err
	}
	out := agents.RuntimeStatus{Busy: st.Busy, Sessions: make([]agents.Session, len(st.Sessions))}
	for i, s := range st.Sessions {
		out.Sessions[i] = agents.Session{ID: s.ID, Title: s.Title, Busy: s.Busy}
	}
	if e := st.LastError; e != nil {
		out.LastError = &agents.TurnError{SessionID: e.SessionID, Message: e.Message, Time: time.Unix(e.Time, 0).UTC()}
	}
	return out, nil
}

// Prompt implements agents.RuntimeClient, reporting the id of the message
// it sent.
func (c codingClient) Prompt(ctx context.Context, sessionID, text string) (agents.Session, error) {
	res, err := c.Send(ctx, sessionID, text)
	if err != nil {
		return agents.Session{}, err
	}
	return agents.Session{ID: res.SessionID, MessageID: res.MessageID}, nil
}

// connectCoding is the platform's default agents.Connector: the coding
// runtime's control API (docs/runtime-control.md).
func connectCoding(endpoint, controlToken string) agents.RuntimeClient {
	return codingClient{coderuntime.NewClient(endpoint, controlToken)}
}
