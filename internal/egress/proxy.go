package egress

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Proxy is an HTTP forward proxy whose every connection goes through a
// Dialer: CONNECT tunnels (https, and anything else spoken over a tunnel)
// and absolute-URI requests (plain http) are each checked when they dial.
// It follows no redirects itself, so each hop a client follows is a new
// request and is checked again. Refusals answer 403 with the policy's
// message, so the tool that asked shows the reason.
type Proxy struct {
	dialer    *Dialer
	log       *slog.Logger
	transport *http.Transport
	rp        *httputil.ReverseProxy

	mu      sync.Mutex
	tunnels map[net.Conn]struct{}
	closed  bool
}

// NewProxy returns a proxy dialling with d; log may be nil.
func NewProxy(d *Dialer, log *slog.Logger) *Proxy {
	if d == nil {
		d = &Dialer{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{dialer: d, log: log, tunnels: map[net.Conn]struct{}{}}
	p.transport = &http.Transport{
		Proxy:                 nil, // never chain to the runtime's own proxy settings
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     false,
		MaxIdleConns:          32,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("Proxy-Authorization")
			pr.Out.Header.Del("Proxy-Connection")
		},
		Transport:     p.transport,
		FlushInterval: -1,
		ErrorHandler:  p.fail,
	}
	return p
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		p.connect(w, r)
	case r.URL.IsAbs() && (r.URL.Scheme == "http" || r.URL.Scheme == "https") && r.URL.Host != "":
		p.rp.ServeHTTP(w, r)
	default:
		http.Error(w, "agenthost egress proxy: send absolute http URLs or CONNECT host:port", http.StatusBadRequest)
	}
}

// fail answers a request the proxy could not complete.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	if errors.Is(err, ErrRefused) {
		status = http.StatusForbidden
		p.log.Info("egress refused", "host", r.Host, "err", err)
	}
	http.Error(w, err.Error(), status)
}

func (p *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	target := r.Host
	if _, _, err := net.SplitHostPort(target); err != nil {
		http.Error(w, "CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	up, err := p.dialer.DialContext(r.Context(), "tcp", target)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	down, buf, err := rc.Hijack()
	if err != nil {
		up.Close()
		http.Error(w, "cannot tunnel over this connection", http.StatusInternalServerError)
		return
	}
	if !p.track(down, up) {
		down.Close()
		up.Close()
		return
	}
	defer p.untrack(down, up)
	_ = down.SetDeadline(time.Time{})
	if _, err := io.WriteString(down, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	// Bytes the client sent after its CONNECT line are already buffered.
	if n := buf.Reader.Buffered(); n > 0 {
		b, _ := buf.Reader.Peek(n)
		if _, err := up.Write(b); err != nil {
			return
		}
	}
	Splice(down, up)
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.tunnels[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.tunnels, c)
		c.Close()
	}
}

// Close ends open tunnels and idle upstream connections. Requests in
// flight are the http.Server's to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.tunnels {
		c.Close()
	}
	p.mu.Unlock()
	p.transport.CloseIdleConnections()
	return nil
}

// Splice copies between a and b in both directions until both sides are
// done, passing on half-closes, then closes both.
func Splice(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// maxSocketPath is the longest path a unix socket may have on Linux.
const maxSocketPath = 107

// ListenUnix listens on a unix socket at path, replacing a stale socket
// file left by an earlier run, readable and writable by the owner only.
// A path longer than unix sockets allow is bound through its directory's
// descriptor (/proc/self/fd/N/name), so deep data directories work.
func ListenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("egress: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("egress: removing stale socket: %w", err)
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	bind := path
	if len(path) > maxSocketPath {
		d, err := os.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("egress: %w", err)
		}
		defer d.Close()
		bind = fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), filepath.Base(path))
		if len(bind) > maxSocketPath {
			return nil, fmt.Errorf("egress: socket name %s is too long", filepath.Base(path))
		}
	}
	ln, err := net.Listen("unix", bind)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("egress: %w", err)
	}
	return &unlinkListener{Listener: ln, path: path}, nil
}

// unlinkListener removes its socket file when closed (the net package
// would remove the name it was bound with, which may be a /proc path).
type unlinkListener struct {
	net.Listener
	path string
	once sync.Once
}

func (l *unlinkListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

// Server is a Proxy served on a listener.
type Server struct {
	Proxy *Proxy
	srv   *http.Server
	done  chan struct{}
}

// Serve serves p on ln in a goroutine until Close.
func Serve(ln net.Listener, p *Proxy) *Server {
	s := &Server{Proxy: p, done: make(chan struct{}),
		srv: &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s
}

// Close stops the server, its requests and its tunnels.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.Proxy.Close()
	<-s.done
	return err
}
