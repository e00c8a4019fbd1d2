package host

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/agenthost/agenthost/relay"
)

// The host's side of the relay (docs/protocol.md §4). When relay_url is set the
// host keeps one outbound WebSocket to the relay (relay.Announcer): it
// announces the agent's address, summary, profile and the endpoints where
// it may be reached directly, re-announces freshly signed every minute and
// reconnects with backoff and jitter. Every client session the relay
// forwards runs through ServeFrames, the code that serves /ws, so
// streaming, trace events, ask_user, approvals, onboarding and resume work
// the same; the gate sees the client's own signed envelope in each frame,
// so trust applies to the original signer, never to the relay.
//
// The announcer starts with the server (Start), whether or not the host
// listens anywhere: an agent with no inbound listener is reachable through
// the relay alone. A listener started by Serve adds its LAN addresses to
// the endpoints; public_url replaces them. A reload that changes relay_url
// moves the announcer; one that changes what is announced re-announces.

// hostRelay is the announcer in force and what it announces.
type hostRelay struct {
	ctl       sync.Mutex // serializes startRelay (New, reloads); taken before mu
	mu        sync.Mutex // guards the fields below; a leaf
	url       string     // normalized relay URL of ann; "" when disabled
	ann       *relay.Announcer
	stop      context.CancelFunc
	done      chan struct{} // closed when ann's Run returns
	listeners []net.Addr    // addresses the host serves on
}

// WithPublicURL sets the URL where clients reach the agent directly (e.g.
// "https://agent.example.com"); when set, it is announced on the relay
// instead of the listener's LAN addresses. Same as host.yaml's public_url.
func WithPublicURL(u string) Option { return func(s *settings) { s.code.PublicURL = &u } }

// WithRelayOptions passes options to the relay announcer (heartbeat,
// backoff, timeouts), mainly for tests.
func WithRelayOptions(opts ...relay.AnnouncerOption) Option {
	return func(s *settings) { s.relayOpts = append(s.relayOpts, opts...) }
}

// RelayStatus reports the host's relay connection; ok is false when no
// relay is configured.
func (s *Server) RelayStatus() (st relay.Status, relayURL string, ok bool) {
	s.relay.mu.Lock()
	ann, u := s.relay.ann, s.relay.url
	s.relay.mu.Unlock()
	if ann == nil {
		return relay.Status{}, "", false
	}
	return ann.Status(), u, true
}

// startRelay starts (or moves, or stops) the announcer to match the
// configuration in force. It is called by Start and by Reload.
func (s *Server) startRelay() {
	s.relay.ctl.Lock()
	defer s.relay.ctl.Unlock()
	cfg := s.current().cfg
	want := ""
	if strings.TrimSpace(cfg.RelayURL) != "" {
		u, err := relay.NormalizeRelayURL(cfg.RelayURL)
		if err != nil {
			s.log.Error("relay disabled: bad relay_url", "err", err)
		} else {
			want = u
		}
	}
	r := &s.relay
	r.mu.Lock()
	if r.url == want && r.ann != nil {
		r.mu.Unlock()
		s.reannounce()
		return
	}
	stop, done := r.stop, r.done
	r.url, r.ann, r.stop, r.done = "", nil, nil, nil
	r.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	if want == "" || s.bg == nil || s.bg.Err() != nil {
		return
	}
	ann, err := relay.NewAnnouncer(want, s.id, s.announceInfo(), s.serveRelayed,
		append([]relay.AnnouncerOption{relay.WithLogger(s.log)}, s.set.relayOpts...)...)
	if err != nil {
		s.log.Error("relay disabled", "relay", want, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(s.bg)
	done = make(chan struct{})
	r.mu.Lock()
	r.url, r.ann, r.stop, r.done = want, ann, cancel, done
	r.mu.Unlock()
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		defer close(done)
		ann.Run(ctx)
	}()
	s.log.Info("announcing on the relay", "relay", want, "address", s.id.Address())
}

// relayListening records a listener whose addresses become endpoints.
func (s *Server) relayListening(addr net.Addr) {
	s.relay.mu.Lock()
	s.relay.listeners = append(s.relay.listeners, addr)
	s.relay.mu.Unlock()
	s.reannounce()
}

// relayStopped forgets a listener that closed.
func (s *Server) relayStopped(addr net.Addr) {
	s.relay.mu.Lock()
	s.relay.listeners = slices.DeleteFunc(s.relay.listeners, func(a net.Addr) bool { return a == addr })
	s.relay.mu.Unlock()
	s.reannounce()
}

// reannounce sends what the agent announces now, when it changed.
func (s *Server) reannounce() {
	s.relay.mu.Lock()
	ann := s.relay.ann
	s.relay.mu.Unlock()
	if ann == nil {
		return
	}
	if err := ann.SetInfo(s.announceInfo()); err != nil {
		s.log.Warn("relay: cannot announce the new settings", "err", err)
	}
}

// announceInfo is what the host announces: summary, profile, endpoints.
func (s *Server) announceInfo() relay.AnnounceInfo {
	rt := s.current()
	summary := rt.cfg.Summary
	if summary == "" {
		summary = rt.name
	}
	s.relay.mu.Lock()
	lns := slices.Clone(s.relay.listeners)
	s.relay.mu.Unlock()
	return relay.AnnounceInfo{
		Summary:   summary,
		Endpoints: endpointsFor(rt.cfg.PublicURL, lns, interfaceAddrs),
		Profile: &relay.Profile{Alias: rt.name, Tools: slices.Clone(rt.tools), Model: rt.model,
			Examples: slices.Clone(rt.cfg.Examples)},
	}
}

// serveRelayed serves one relayed client session with the /ws protocol.
func (s *Server) serveRelayed(ctx context.Context, fc relay.FrameConn, _ string) {
	err := s.ServeFrames(ctx, relayedConn{fc}, ConnInfo{Transport: "relay"})
	if err != nil && ctx.Err() == nil {
		s.log.Debug("relayed session ended", "err", err)
	}
}

// relayedConn is a relayed session as ServeFrames reads it. The relay
// stamps its session id on every client frame; CONNECT, INPUT and
// SESSION_STATUS name a session anyway (the relay's id is the client's
// session id, or a fresh one for a new session), while the frames that
// answer a run (APPROVAL_RESPONSE, ASK_USER_RESPONSE, ONBOARD_SUBMIT,
// INTERRUPT, …) have no such field and get it removed.
type relayedConn struct{ relay.FrameConn }

func (c relayedConn) ReadFrame(ctx context.Context) ([]byte, error) {
	f, err := c.FrameConn.ReadFrame(ctx)
	if err != nil {
		return nil, err
	}
	h, err := relay.ParseHeader(f)
	if err != nil || !h.HasSessionID {
		return f, nil // ServeFrames answers malformed frames itself
	}
	switch h.Type {
	case "CONNECT", "INPUT", "SESSION_STATUS":
		return f, nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(f, &m) != nil {
		return f, nil
	}
	delete(m, "session_id")
	return json.Marshal(m)
}

// interfaceAddrs lists the machine's unicast addresses.
func interfaceAddrs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	return ips
}

// endpointsFor returns the URLs to announce: public (its http(s) form and
// its WebSocket), or, without it, http and ws URLs of every address the
// listeners are reachable on from another machine. Loopback and
// link-local addresses mean nothing elsewhere and are left out, and so are
// the private and shared (CGNAT) addresses of the machine's interfaces —
// Docker bridges, a home LAN — unless a listener is bound to one
// explicitly; so a host that listens only on 127.0.0.1, or not at all, or
// on all interfaces of a machine with no public address, announces none
// and is reached through the relay (or at public_url).
func endpointsFor(public string, listeners []net.Addr, ifaces func() []net.IP) []string {
	if public = strings.TrimRight(strings.TrimSpace(public), "/"); public != "" {
		u, err := url.Parse(public)
		if err == nil && u.Host != "" {
			ws := *u
			switch u.Scheme {
			case "https", "wss":
				u.Scheme, ws.Scheme = "https", "wss"
			default:
				u.Scheme, ws.Scheme = "http", "ws"
			}
			ws.Path = strings.TrimRight(ws.Path, "/") + "/ws"
			return []string{u.String(), ws.String()}
		}
	}
	var out []string
	seen := map[string]bool{}
	add := func(ip net.IP, port int) {
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			return
		}
		hp := net.JoinHostPort(ip.String(), strconv.Itoa(port))
		if seen[hp] || len(out)+2 > relay.MaxEndpoints {
			return
		}
		seen[hp] = true
		out = append(out, "http://"+hp, "ws://"+hp+"/ws")
	}
	for _, a := range listeners {
		ta, ok := a.(*net.TCPAddr)
		if !ok {
			continue
		}
		if ta.IP != nil && !ta.IP.IsUnspecified() {
			add(ta.IP, ta.Port)
			continue
		}
		for _, ip := range ifaces() {
			if ip.IsPrivate() || cgnat.Contains(ip) {
				continue
			}
			if ip.To4() != nil || ta.IP == nil || ta.IP.To4() == nil {
				add(ip, ta.Port)
			}
		}
	}
	return out
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}

// relayLine is the banner's relay line.
func (s *Server) relayLine() string {
	st, u, ok := s.RelayStatus()
	switch {
	case !ok && s.current().cfg.RelayURL == "":
		return "disabled"
	case !ok:
		return s.current().cfg.RelayURL + " (not announcing: see the log)"
	case st.Announced:
		return fmt.Sprintf("%s (announced)", u)
	}
	return fmt.Sprintf("%s (connecting…)", u)
}
