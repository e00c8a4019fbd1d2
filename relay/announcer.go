package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/trust"
)

// Announcer keeps an agent announced on a relay and serves the client
// sessions the relay forwards to it. It holds one outbound WebSocket to
// {relay}/ws/announce, re-announces freshly signed every heartbeat, and
// reconnects with backoff when the relay goes away. Each relayed client
// session is handed to the SessionHandler in its own goroutine.
type Announcer struct {
	base    string
	id      *trust.Identity
	handler SessionHandler
	o       announcerOptions

	mu     sync.Mutex // guards info, status and notify; a leaf
	info   AnnounceInfo
	status Status
	notify chan struct{} // a re-announce is wanted now (info changed)

	handlers sync.WaitGroup // running SessionHandlers
}

// Status is the Announcer's view of its relay connection.
type Status struct {
	// Announced reports that the relay accepted the current connection's
	// ANNOUNCE: clients can reach the agent through it now.
	Announced bool
	// LastAnnounce is when the relay last confirmed an ANNOUNCE.
	LastAnnounce time.Time
	// LastError is why the last connection attempt failed or ended.
	LastError error
	// Connects counts connections made; Sessions the sessions live now.
	Connects int
	Sessions int
}

type announcerOptions struct {
	heartbeat    time.Duration
	backoff      []time.Duration
	jitter       float64
	healthyAfter time.Duration
	dialTimeout  time.Duration
	writeTimeout time.Duration
	maxFrame     int64
	sessionQueue int
	httpClient   *http.Client
	log          *slog.Logger
	now          func() time.Time
	onStatus     func(Status)
}

// AnnouncerOption configures an Announcer.
type AnnouncerOption func(*announcerOptions)

// WithHeartbeat sets how often the agent re-announces (default 60 s; the
// relay forgets agents silent for 120 s).
func WithHeartbeat(d time.Duration) AnnouncerOption {
	return func(o *announcerOptions) { o.heartbeat = d }
}

// WithBackoff sets the reconnect delays, used in turn and the last one
// repeated (default 1, 2, 4, 8, 16, 30 s), and the jitter added to each as a
// fraction of it (default 0.2). The schedule restarts after a connection
// that was accepted and lasted healthyAfter (default 10 s).
func WithBackoff(delays []time.Duration, jitter float64, healthyAfter time.Duration) AnnouncerOption {
	return func(o *announcerOptions) {
		o.backoff, o.jitter, o.healthyAfter = delays, jitter, healthyAfter
	}
}

// WithMaxFrameSize bounds frames in both directions (default
// DefaultMaxFrameSize); keep it at or below the relay's.
func WithMaxFrameSize(n int64) AnnouncerOption { return func(o *announcerOptions) { o.maxFrame = n } }

// WithSessionQueue bounds the frames waiting for one session's handler
// (default 256). A handler that falls that far behind loses its session.
func WithSessionQueue(n int) AnnouncerOption { return func(o *announcerOptions) { o.sessionQueue = n } }

// WithHTTPClient sets the client used to dial the relay.
func WithHTTPClient(hc *http.Client) AnnouncerOption {
	return func(o *announcerOptions) { o.httpClient = hc }
}

// WithDialTimeout bounds connecting to the relay (default 10 s).
func WithDialTimeout(d time.Duration) AnnouncerOption {
	return func(o *announcerOptions) { o.dialTimeout = d }
}

// WithWriteTimeout bounds writing one frame to the relay (default 30 s); a
// relay that takes longer is treated as gone.
func WithWriteTimeout(d time.Duration) AnnouncerOption {
	return func(o *announcerOptions) { o.writeTimeout = d }
}

// WithLogger sets the logger (default slog.Default()). Frame contents are
// never logged.
func WithLogger(l *slog.Logger) AnnouncerOption { return func(o *announcerOptions) { o.log = l } }

// WithClock sets the clock used for ANNOUNCE timestamps (default time.Now).
func WithClock(now func() time.Time) AnnouncerOption {
	return func(o *announcerOptions) { o.now = now }
}

// WithStatusFunc calls f whenever the Status changes, e.g. to show "relay:
// connected" in a banner. f may be called from several goroutines at once
// and must not block.
func WithStatusFunc(f func(Status)) AnnouncerOption {
	return func(o *announcerOptions) { o.onStatus = f }
}

// NewAnnouncer returns an Announcer for the agent id on the relay at
// relayURL (a base URL or one ending in /ws/announce). It checks that info
// makes a valid ANNOUNCE; Run does the rest.
func NewAnnouncer(relayURL string, id *trust.Identity, info AnnounceInfo, handler SessionHandler, opts ...AnnouncerOption) (*Announcer, error) {
	base, err := NormalizeRelayURL(relayURL)
	if err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errors.New("relay: NewAnnouncer needs a SessionHandler")
	}
	o := announcerOptions{
		heartbeat:    60 * time.Second,
		backoff:      []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second},
		jitter:       0.2,
		healthyAfter: 10 * time.Second,
		dialTimeout:  10 * time.Second,
		writeTimeout: 30 * time.Second,
		maxFrame:     DefaultMaxFrameSize,
		sessionQueue: 256,
		log:          slog.Default(),
		now:          time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.backoff) == 0 || o.heartbeat <= 0 || o.sessionQueue <= 0 || o.maxFrame <= 0 {
		return nil, errors.New("relay: invalid Announcer options")
	}
	if _, err := BuildAnnounce(id, info, base, o.now()); err != nil {
		return nil, err
	}
	return &Announcer{base: base, id: id, handler: handler, o: o, info: info, notify: make(chan struct{}, 1)}, nil
}

// RelayURL returns the relay's base URL.
func (a *Announcer) RelayURL() string { return a.base }

// SetInfo changes what the agent announces and re-announces at once.
func (a *Announcer) SetInfo(info AnnounceInfo) error {
	if _, err := BuildAnnounce(a.id, info, a.base, a.o.now()); err != nil {
		return err
	}
	a.mu.Lock()
	a.info = info
	a.mu.Unlock()
	select {
	case a.notify <- struct{}{}:
	default:
	}
	return nil
}

// Status returns the current connection status.
func (a *Announcer) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

func (a *Announcer) setStatus(f func(*Status)) {
	a.mu.Lock()
	f(&a.status)
	st := a.status
	a.mu.Unlock()
	if a.o.onStatus != nil {
		a.o.onStatus(st)
	}
}

// Run keeps the agent announced until ctx ends, reconnecting as needed. It
// returns ctx's error once every session handler has returned.
func (a *Announcer) Run(ctx context.Context) error {
	defer a.handlers.Wait()
	attempt := 0
	for {
		started := a.o.now()
		accepted, err := a.connect(ctx)
		if ctx.Err() != nil {
			a.setStatus(func(s *Status) { s.Announced = false })
			return ctx.Err()
		}
		a.setStatus(func(s *Status) { s.Announced, s.LastError = false, err })
		if accepted && a.o.now().Sub(started) >= a.o.healthyAfter {
			attempt = 0
		}
		d := a.o.backoff[min(attempt, len(a.o.backoff)-1)]
		d += time.Duration(rand.Float64() * a.o.jitter * float64(d))
		attempt++
		a.o.log.Warn("relay: connection ended, reconnecting", "relay", a.base, "err", err, "in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// relayConn is one announce connection and the sessions relayed over it.
type relayConn struct {
	a        *Announcer
	ws       *websocket.Conn
	maxFrame int64
	out      chan []byte
	closed   chan struct{} // closed when the connection ends

	mu       sync.Mutex // guards sessions; a leaf
	sessions map[string]*relaySession
}

// send queues frame for the relay, waiting for room. It fails when ctx
// ends, the connection ends, or sessionDone (if not nil) is closed.
func (c *relayConn) send(ctx context.Context, frame []byte, sessionDone <-chan struct{}) error {
	select {
	case c.out <- frame:
		return nil
	case <-c.closed:
		return ErrSessionClosed
	case <-sessionDone:
		return ErrSessionClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *relayConn) detach(s *relaySession) {
	c.mu.Lock()
	if c.sessions[s.id] == s {
		delete(c.sessions, s.id)
	}
	n := len(c.sessions)
	c.mu.Unlock()
	c.a.setStatus(func(st *Status) { st.Sessions = n })
}

// connect runs one connection to the relay until it ends. accepted reports
// whether the relay accepted an ANNOUNCE on it.
func (a *Announcer) connect(ctx context.Context) (accepted bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, a.o.dialTimeout)
	ws, _, err := websocket.Dial(dctx, a.base+"/ws/announce", &websocket.DialOptions{HTTPClient: a.o.httpClient})
	cancel()
	if err != nil {
		return false, fmt.Errorf("dialing relay: %w", err)
	}
	ws.SetReadLimit(a.o.maxFrame)
	a.setStatus(func(s *Status) { s.Connects++ })
	cctx, stop := context.WithCancel(ctx)
	c := &relayConn{a: a, ws: ws, maxFrame: a.o.maxFrame, out: make(chan []byte, 64),
		closed: make(chan struct{}), sessions: map[string]*relaySession{}}
	var wg sync.WaitGroup
	defer func() {
		stop()
		close(c.closed)
		ws.CloseNow()
		wg.Wait()
		c.mu.Lock()
		sessions := c.sessions
		c.sessions = map[string]*relaySession{}
		c.mu.Unlock()
		for _, s := range sessions {
			s.end()
		}
	}()

	writeErr := make(chan error, 1)
	wg.Add(2)
	go func() { defer wg.Done(); writeErr <- c.writeLoop(cctx) }()
	go func() { defer wg.Done(); a.heartbeat(cctx, c) }()

	for {
		_, frame, err := ws.Read(cctx)
		if err != nil {
			select {
			case werr := <-writeErr:
				if werr != nil {
					return accepted, werr
				}
			default:
			}
			return accepted, fmt.Errorf("reading from relay: %w", err)
		}
		h, err := ParseHeader(frame)
		if err != nil {
			a.o.log.Debug("relay: malformed frame from relay", "bytes", len(frame))
			continue
		}
		switch {
		case h.Type == TypeAnnounceOK:
			first := !accepted
			accepted = true
			a.setStatus(func(s *Status) { s.Announced, s.LastAnnounce, s.LastError = true, a.o.now(), nil })
			if first {
				a.o.log.Info("relay: announced", "relay", a.base, "address", a.id.Address())
			}
		case h.Type == TypeError && h.SessionID == "":
			msg := errorText(frame)
			if !accepted {
				return false, fmt.Errorf("%w: %s", ErrAnnounceRefused, msg)
			}
			a.o.log.Warn("relay: error from relay", "relay", a.base, "error", msg)
		case h.SessionID == "":
			a.o.log.Debug("relay: frame without session", "type", h.Type, "bytes", len(frame))
		case h.Type == TypeClose:
			c.mu.Lock()
			s := c.sessions[h.SessionID]
			c.mu.Unlock()
			if s != nil {
				s.end()
			}
		default:
			c.deliver(ctx, h, frame)
		}
	}
}

// handlerStall is how long deliver waits for a session handler with a full
// queue to take a frame before it ends that session.
const handlerStall = 2 * time.Second

// deliver hands a frame to its session, starting the session's handler on
// its first frame. A handler whose queue is full is waited for while it
// takes frames; one that takes none for handlerStall loses its session
// rather than stall every other session on the connection longer.
func (c *relayConn) deliver(ctx context.Context, h Header, frame []byte) {
	a := c.a
	c.mu.Lock()
	s := c.sessions[h.SessionID]
	isNew := s == nil
	if isNew {
		if h.Type == TypeError {
			c.mu.Unlock()
			return
		}
		s = &relaySession{id: h.SessionID, conn: c, in: make(chan []byte, a.o.sessionQueue), done: make(chan struct{})}
		c.sessions[h.SessionID] = s
	}
	n := len(c.sessions)
	c.mu.Unlock()
	select {
	case s.in <- frame:
	default:
		// Wait while the handler takes frames (each one it takes makes
		// room); the relay, and so the client, wait with it.
		t := time.NewTimer(handlerStall)
		select {
		case s.in <- frame:
			t.Stop()
		case <-s.done:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
			a.o.log.Warn("relay: session handler not keeping up, session closed", "session", s.id)
			s.Close("agent overloaded")
			return
		}
	}
	if isNew {
		a.setStatus(func(st *Status) { st.Sessions = n })
		a.handlers.Add(1)
		go func() {
			defer a.handlers.Done()
			defer s.Close("")
			a.handler(ctx, s, s.id)
		}()
	}
}

func (c *relayConn) writeLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-c.out:
			wctx, cancel := context.WithTimeout(ctx, c.a.o.writeTimeout)
			err := c.ws.Write(wctx, websocket.MessageText, f)
			cancel()
			if err != nil {
				c.ws.CloseNow()
				return fmt.Errorf("writing to relay: %w", err)
			}
		}
	}
}

// heartbeat sends the first ANNOUNCE at once, then a freshly signed one
// every heartbeat and whenever the info changes.
func (a *Announcer) heartbeat(ctx context.Context, c *relayConn) {
	t := time.NewTicker(a.o.heartbeat)
	defer t.Stop()
	for {
		a.mu.Lock()
		info := a.info
		a.mu.Unlock()
		frame, err := BuildAnnounce(a.id, info, a.base, a.o.now())
		if err != nil {
			a.o.log.Error("relay: building ANNOUNCE", "err", err)
		} else if c.send(ctx, frame, nil) != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.notify:
		}
	}
}

// errorText returns the message of an ERROR frame.
func errorText(frame []byte) string {
	msg := StringField(frame, "error")
	if msg == "" {
		msg = StringField(frame, "message")
	}
	return clip(msg, 300)
}
