package relayserver

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens a second up to burst. A zero rate
// means unlimited. It is not safe for concurrent use; its owner locks.
type bucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int, now time.Time) bucket {
	b := float64(burst)
	if b < 1 {
		b = 1
	}
	return bucket{rate: rate, burst: b, tokens: b, last: now}
}

// allow takes one token if there is one.
func (b *bucket) allow(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens += dt * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether the bucket has refilled, so its owner may forget it.
func (b *bucket) full(now time.Time) bool {
	return b.rate <= 0 || b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst
}

// syncBucket is a bucket with its own lock, for per-connection limits
// touched by one reader goroutine and, rarely, the sweeper.
type syncBucket struct {
	mu sync.Mutex
	b  bucket
}

func (s *syncBucket) allow(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.allow(now)
}

// ipLimits holds per-IP connection counts and connection-rate buckets, and
// per-address buckets (announces, new sessions). Its mutex is a leaf: no
// other lock is taken while holding it.
type ipLimits struct {
	cfg *Config
	mu  sync.Mutex
	ips map[string]*ipEntry
	// announce and sessions are keyed by agent address.
	announce map[string]*bucket
	sessions map[string]*bucket
}

type ipEntry struct {
	conns int
	rate  bucket
}

func newIPLimits(cfg *Config) *ipLimits {
	return &ipLimits{cfg: cfg, ips: map[string]*ipEntry{}, announce: map[string]*bucket{}, sessions: map[string]*bucket{}}
}

// admit reserves a connection slot for ip. It returns "" on success, or the
// reason for refusal ("ip_limit", "rate_limited").
func (l *ipLimits) admit(ip string, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.ips[ip]
	if e == nil {
		e = &ipEntry{rate: newBucket(l.cfg.ConnRatePerIP, l.cfg.ConnBurstPerIP, now)}
		l.ips[ip] = e
	}
	if l.cfg.MaxConnsPerIP > 0 && e.conns >= l.cfg.MaxConnsPerIP {
		return "ip_limit"
	}
	if !e.rate.allow(now) {
		return "rate_limited"
	}
	e.conns++
	return ""
}

// release frees a slot admit reserved.
func (l *ipLimits) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.ips[ip]; e != nil && e.conns > 0 {
		e.conns--
	}
}

// allowAnnounce takes an announce token for addr.
func (l *ipLimits) allowAnnounce(addr string, now time.Time) bool {
	return l.allowKeyed(l.announce, addr, l.cfg.AnnounceRate, l.cfg.AnnounceBurst, now)
}

// allowSession takes a new-session token for the agent at addr.
func (l *ipLimits) allowSession(addr string, now time.Time) bool {
	return l.allowKeyed(l.sessions, addr, l.cfg.SessionRatePerAgent, l.cfg.SessionBurstPerAgent, now)
}

func (l *ipLimits) allowKeyed(m map[string]*bucket, key string, rate float64, burst int, now time.Time) bool {
	if rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := m[key]
	if b == nil {
		nb := newBucket(rate, burst, now)
		b = &nb
		m[key] = b
	}
	return b.allow(now)
}

// sweep forgets idle entries so the maps do not grow without bound.
func (l *ipLimits) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ip, e := range l.ips {
		if e.conns == 0 && e.rate.full(now) {
			delete(l.ips, ip)
		}
	}
	for _, m := range []map[string]*bucket{l.announce, l.sessions} {
		for k, b := range m {
			if b.full(now) {
				delete(m, k)
			}
		}
	}
}

// proxies is who may tell the relay a client's address in
// X-Forwarded-For.
type proxies struct {
	on   bool         // honour X-Forwarded-For at all
	nets []*net.IPNet // trusted proxies; empty: only the direct peer
}

// newProxies builds the trusted proxies: IPs or CIDRs. With none listed
// and on set, the direct peer alone is trusted (a relay behind one proxy).
func newProxies(on bool, list []string) (proxies, error) {
	p := proxies{on: on || len(list) > 0}
	for _, e := range list {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !strings.Contains(e, "/") {
			ip := net.ParseIP(e)
			if ip == nil {
				return p, fmt.Errorf("trusted proxy %q is not an IP address or CIDR", e)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			p.nets = append(p.nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(e)
		if err != nil {
			return p, fmt.Errorf("trusted proxy %q is not an IP address or CIDR", e)
		}
		p.nets = append(p.nets, n)
	}
	return p, nil
}

func (p proxies) trusted(ip net.IP, peer bool) bool {
	if len(p.nets) == 0 {
		return peer
	}
	for _, n := range p.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP returns the caller's IP. Behind trusted proxies it is the
// right-most X-Forwarded-For hop that is not a trusted proxy: each proxy
// appends the address it saw, so hops right of the client are proxies the
// operator runs, and everything left of it is whatever the client wrote.
func clientIP(r *http.Request, p proxies) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	cur := net.ParseIP(host)
	if !p.on || cur == nil || !p.trusted(cur, true) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		ip := net.ParseIP(hops[i])
		if ip == nil {
			// A hop no proxy of ours wrote: stop at the last one we trust.
			return cur.String()
		}
		cur = ip
		if !p.trusted(ip, false) {
			return ip.String()
		}
	}
	return cur.String()
}
