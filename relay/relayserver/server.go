// Package relayserver is the agenthost relay: agents behind NAT keep one
// outbound WebSocket to it (/ws/announce), clients reach them through it
// (/ws/input), and anyone can look agents up and search them (/api/agents).
// It holds everything in memory — nothing is written to disk — and never
// logs frame contents, only their types and sizes.
//
// The wire protocol is documented in package relay and docs/relay.md.
//
// # Locks
//
// Lock order, outermost first (see each type):
//
//	registry.mu → agentConn.mu
//
// ipLimits.mu and syncBucket.mu are leaves: nothing else is
// acquired while they are held. No lock is held while writing to a socket;
// sockets are written only by each peer's writer goroutine.
package relayserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/relay"
	"github.com/agenthost/agenthost/trust"
)

// Config configures a relay. The zero value of every field means its
// default; a negative rate or limit means unlimited.
type Config struct {
	// Addr is the address Start listens on (default ":8765").
	Addr string
	// MaxFrameSize bounds one frame in bytes (default 16 MiB). A peer that
	// sends a bigger one is disconnected with status 1009.
	MaxFrameSize int64
	// SendQueueFrames and SendQueueBytes bound each connection's outbound
	// queue (default 256 frames, 32 MiB). A frame for a full queue waits
	// for room (see StallTimeout); a client whose queue stays full is
	// disconnected, and a frame for an agent whose queue stays full ends
	// that client's session.
	SendQueueFrames int
	SendQueueBytes  int64
	// WriteTimeout bounds writing one frame to a peer (default 30 s).
	WriteTimeout time.Duration
	// StallTimeout is how long a frame waits for room in a full outbound
	// queue whose writer sends nothing (default 2 s). While that writer
	// makes progress the frame waits, and the connection it came from is
	// not read meanwhile; after StallTimeout without progress the
	// destination counts as not keeping up.
	StallTimeout time.Duration
	// AnnounceTimeout is how long a new agent connection has to send its
	// first ANNOUNCE (default 10 s); FirstFrameTimeout the same for a client's
	// first frame (default 30 s).
	AnnounceTimeout   time.Duration
	FirstFrameTimeout time.Duration
	// SilenceTimeout drops an agent that sent nothing for this long, and
	// forgets a disconnected one after it (default 120 s).
	SilenceTimeout time.Duration
	// HTTPTimeouts bound the relay's HTTP server: reading headers (default
	// 10 s), reading a whole request (30 s; WebSocket connections lift it
	// once upgraded) and keep-alive idleness (2 minutes).
	HTTPReadHeaderTimeout, HTTPReadTimeout, HTTPIdleTimeout time.Duration
	// IdleTimeout closes a client session with no frames either way for
	// this long (default 5 min).
	IdleTimeout time.Duration
	// ClockSkew is how far an ANNOUNCE timestamp may be from the relay's
	// clock (default 300 s). RestartSlack is how much older than the relay's
	// start an ANNOUNCE may be when the relay has no record of the address
	// (default 30 s): it stops announces captured before a restart from
	// being replayed after it.
	ClockSkew    time.Duration
	RestartSlack time.Duration
	// MaxConnsPerIP bounds concurrent connections from one IP (default
	// 256); ConnRatePerIP/ConnBurstPerIP rate-limit new ones (default 10/s,
	// burst 40).
	MaxConnsPerIP  int
	ConnRatePerIP  float64
	ConnBurstPerIP int
	// MaxSessionsPerAgent bounds concurrent client sessions to one agent
	// (default 1024); SessionRatePerAgent/SessionBurstPerAgent rate-limit
	// new ones (default 20/s, burst 100).
	MaxSessionsPerAgent  int
	SessionRatePerAgent  float64
	SessionBurstPerAgent int
	// ClientFrameRate/ClientFrameBurst rate-limit frames from one client
	// (default 50/s, burst 200); AgentFrameRate/AgentFrameBurst those from
	// one agent (default 5000/s, burst 10000).
	ClientFrameRate  float64
	ClientFrameBurst int
	AgentFrameRate   float64
	AgentFrameBurst  int
	// AnnounceRate/AnnounceBurst rate-limit ANNOUNCEs per address (default
	// one per 5 s, burst 12).
	AnnounceRate  float64
	AnnounceBurst int
	// MaxAgents bounds the agents the relay remembers (default 100000).
	MaxAgents int
	// TrustProxy takes the client IP from X-Forwarded-For: the right-most
	// hop that is not a trusted proxy. Set it only behind a proxy that
	// appends to that header. With TrustedProxies empty, the direct peer
	// is the one trusted proxy.
	TrustProxy bool
	// TrustedProxies lists the proxies (IP addresses or CIDRs) whose
	// X-Forwarded-For hops are believed; setting it implies TrustProxy.
	TrustedProxies []string
	// SweepInterval is how often timeouts are checked (default 1 s).
	SweepInterval time.Duration
	// Logger receives connection events (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defF := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Addr == "" {
		c.Addr = ":8765"
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = relay.DefaultMaxFrameSize
	}
	if c.SendQueueBytes == 0 {
		c.SendQueueBytes = 32 << 20
	}
	def(&c.SendQueueFrames, 256)
	defD(&c.WriteTimeout, 30*time.Second)
	defD(&c.StallTimeout, 2*time.Second)
	defD(&c.AnnounceTimeout, 10*time.Second)
	defD(&c.FirstFrameTimeout, 30*time.Second)
	defD(&c.SilenceTimeout, 120*time.Second)
	defD(&c.IdleTimeout, 5*time.Minute)
	defD(&c.HTTPReadHeaderTimeout, 10*time.Second)
	defD(&c.HTTPReadTimeout, 30*time.Second)
	defD(&c.HTTPIdleTimeout, 2*time.Minute)
	defD(&c.ClockSkew, relay.DefaultClockSkew)
	defD(&c.RestartSlack, 30*time.Second)
	def(&c.MaxConnsPerIP, 256)
	defF(&c.ConnRatePerIP, 10)
	def(&c.ConnBurstPerIP, 40)
	def(&c.MaxSessionsPerAgent, 1024)
	defF(&c.SessionRatePerAgent, 20)
	def(&c.SessionBurstPerAgent, 100)
	defF(&c.ClientFrameRate, 50)
	def(&c.ClientFrameBurst, 200)
	defF(&c.AgentFrameRate, 5000)
	def(&c.AgentFrameBurst, 10000)
	defF(&c.AnnounceRate, 0.2)
	def(&c.AnnounceBurst, 12)
	def(&c.MaxAgents, 100000)
	defD(&c.SweepInterval, time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server is a relay. Create it with New, serve it with Start (or mount
// Handler in your own server), and stop it with Shutdown.
type Server struct {
	proxies proxies
	// replay remembers the signed first frames that opened sessions, so a
	// captured one cannot claim a session again.
	replay  *trust.MemoryLedger
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	start   time.Time
	reg     *registry
	limits  *ipLimits
	metrics *metrics
	mux     http.Handler

	ctx    context.Context // ends at Shutdown: every connection's lifetime
	cancel context.CancelFunc
	conns  sync.WaitGroup // WebSocket handlers and their writers
	sweep  sync.WaitGroup

	sessions atomic.Int64 // live client sessions

	mu       sync.Mutex // guards the fields below; a leaf
	closed   bool
	httpSrv  *http.Server
	listener net.Listener
	peers    map[*peer]struct{} // every live WebSocket connection
}

// New returns a relay configured by cfg. It starts the background sweeper
// that enforces timeouts; call Shutdown to stop it.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.MaxFrameSize < relay.MaxAnnounceSize {
		return nil, fmt.Errorf("relayserver: MaxFrameSize %d is below the ANNOUNCE limit %d", cfg.MaxFrameSize, relay.MaxAnnounceSize)
	}
	px, err := newProxies(cfg.TrustProxy, cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("relayserver: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		proxies: px,
		replay:  trust.NewMemoryLedger(cfg.Now),
		cfg:     cfg,
		log:     obs.Logger(cfg.Logger),
		now:     cfg.Now,
		start:   cfg.Now(),
		limits:  newIPLimits(&cfg),
		metrics: newMetrics(),
		ctx:     ctx,
		cancel:  cancel,
		peers:   map[*peer]struct{}{},
	}
	s.limits.cfg = &s.cfg
	s.reg = newRegistry(s)
	s.metrics.gauge("relay_agents_online", "Agents connected now.", func() float64 { return float64(s.reg.online()) })
	s.metrics.gauge("relay_agents_known", "Agents remembered (online, or offline but not yet forgotten).", func() float64 { return float64(s.reg.known()) })
	s.metrics.gauge("relay_client_sessions", "Client sessions relayed now.", func() float64 { return float64(s.sessions.Load()) })
	s.metrics.gauge("relay_uptime_seconds", "Seconds since the relay started.", func() float64 { return s.now().Sub(s.start).Seconds() })
	s.routes()
	s.sweep.Add(1)
	go s.sweeper()
	return s, nil
}

// Handler returns the relay's HTTP handler: WebSocket endpoints, the agent
// API, /health and /metrics.
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on cfg.Addr and serves in the background. It returns once
// the relay accepts connections.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("relayserver: %w", err)
	}
	return s.Serve(ln)
}

// Serve serves on ln in the background.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return errors.New("relayserver: shut down")
	}
	if s.httpSrv != nil {
		ln.Close()
		return errors.New("relayserver: already serving")
	}
	s.listener = ln
	s.httpSrv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       s.cfg.HTTPReadTimeout,
		IdleTimeout:       s.cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	srv := s.httpSrv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("relay: serving stopped", "err", err)
		}
	}()
	s.log.Info("relay listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the address the relay listens on, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

// URL returns the relay's ws:// base URL, for agents' relay_url, once it
// listens.
func (s *Server) URL() string {
	a := s.Addr()
	if a == nil {
		return ""
	}
	return "ws://" + a.String()
}

// Shutdown stops accepting connections, tells every connected agent and
// client that the relay is going away, and waits for their goroutines (or
// ctx) to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv := s.httpSrv
	s.mu.Unlock()

	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	n := s.closeAll()
	s.metrics.disconnects.add("shutdown", int64(n))
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	s.cancel() // ends whatever did not close in time
	<-done
	s.sweep.Wait()
	return err
}

// track registers a WebSocket handler so Shutdown waits for it. It reports
// false once the relay is shutting down.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns.Add(1)
	return true
}

func (s *Server) addPeer(p *peer) {
	s.mu.Lock()
	s.peers[p] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) removePeer(p *peer) {
	s.mu.Lock()
	delete(s.peers, p)
	s.mu.Unlock()
}

// closeAll tells every connected peer the relay is going away and returns
// how many there were.
// shuttingDown reports whether Shutdown has begun.
func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) closeAll() int {
	s.mu.Lock()
	peers := make([]*peer, 0, len(s.peers))
	for p := range s.peers {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	for _, p := range peers {
		p.fail(relay.ErrorFrame("relay shutting down"), websocket.StatusGoingAway, "relay shutting down")
	}
	return len(peers)
}

// sweeper enforces the silence and idle timeouts and forgets stale state.
func (s *Server) sweeper() {
	defer s.sweep.Done()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			now := s.now()
			s.reg.sweep(now)
			s.limits.sweep(now)
		}
	}
}
