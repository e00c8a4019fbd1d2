package host

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// The host's defences against hostile load: timeouts on every connection,
// a cap on the connections one address holds, and (in http.go, ws.go,
// trustgate.go, uploads.go) small reads until the gate admits a caller,
// rate-limited invite codes and upload quotas.

// Timeouts bound how long the host waits on a client (WithTimeouts).
type Timeouts struct {
	// ReadHeader bounds reading a request's headers (default 10 s).
	ReadHeader time.Duration
	// Read bounds reading a whole request, body included (default 5
	// minutes: a large upload on a slow link). WebSocket and SSE streams
	// lift it once they start.
	Read time.Duration
	// Idle bounds how long a keep-alive connection may wait for its next
	// request (default 2 minutes).
	Idle time.Duration
}

// Default timeouts.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 5 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
)

// WithTimeouts sets the server's timeouts; zero fields keep the defaults.
func WithTimeouts(t Timeouts) Option { return func(s *settings) { s.timeouts = t } }

func (t Timeouts) withDefaults() Timeouts {
	if t.ReadHeader <= 0 {
		t.ReadHeader = DefaultReadHeaderTimeout
	}
	if t.Read <= 0 {
		t.Read = DefaultReadTimeout
	}
	if t.Idle <= 0 {
		t.Idle = DefaultIdleTimeout
	}
	return t
}

// PreAdmitLimit is the largest body or frame the host reads from a caller
// its gate has not admitted (under strict: anyone who has not signed yet).
// It holds a signed prompt and a session; attachments wait for admission.
const PreAdmitLimit = 1 << 20

// preAdmit asks the gate whether this connection's caller is admitted
// before its body or first frame is read: as anonymous, or by signed
// headers (X-Co-*). The answer only decides how much the host reads.
func (s *Server) preAdmit(r *http.Request, transport string) bool {
	req := &Request{Transport: transport, Method: r.Method, Path: r.URL.Path, Header: r.Header, RemoteAddr: r.RemoteAddr}
	g := s.current().gate
	if p, ok := g.(preAdmitter); ok {
		return p.PreAdmit(r.Context(), req)
	}
	_, err := g.Admit(r.Context(), req)
	return err == nil
}

// preAdmitter is a gate that can tell, cheaply and without side effects
// such as a judge's call, whether a request's caller is admitted before
// its body is read.
type preAdmitter interface {
	PreAdmit(ctx context.Context, r *Request) bool
}

// liftReadDeadline lets a long-lived stream (WebSocket, SSE) outlive the
// server's read timeout.
func liftReadDeadline(w http.ResponseWriter) {
	http.NewResponseController(w).SetReadDeadline(time.Time{})
}

// capListener refuses connections past a number per client IP with a 503.
type capListener struct {
	net.Listener
	max func() int

	mu    sync.Mutex
	count map[string]int
}

func newCapListener(ln net.Listener, max func() int) *capListener {
	return &capListener{Listener: ln, max: max, count: map[string]int{}}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c.RemoteAddr())
		l.mu.Lock()
		if l.count[ip] >= l.max() {
			l.mu.Unlock()
			go refuseConn(c)
			continue
		}
		l.count[ip]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *capListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[ip]--; l.count[ip] <= 0 {
		delete(l.count, ip)
	}
}

// refuseConn answers a connection over the cap and closes it.
func refuseConn(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	body := `{"error":"too many connections from your address; close some and retry"}` + "\n"
	c.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: " +
		itoa(len(body)) + "\r\n\r\n" + body))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// countedConn releases its slot once, when closed (also after a
// WebSocket hijacked it).
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
