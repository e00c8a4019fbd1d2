package relayserver

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/relay"
	"github.com/agenthost/agenthost/trust"
)

// Close codes the relay uses beyond RFC 6455's, in the private range.
const (
	closeSilent = 4000 // the agent sent nothing for SilenceTimeout
	closeIdle   = 4001 // the client session was idle for IdleTimeout
)

// agentConn is an agent's announce connection and the client sessions
// relayed over it.
//
// Lock order: registry.mu before agentConn.mu. Nothing else is acquired
// while holding agentConn.mu.
type agentConn struct {
	s      *Server
	p      *peer
	frames syncBucket

	mu       sync.Mutex
	addr     string                 // set by the first accepted ANNOUNCE
	sessions map[string]*clientConn // by relay session id
	gone     bool                   // the connection ended; no new sessions
}

// clientConn is one client's /ws/input connection: one relayed session.
type clientConn struct {
	id     string
	p      *peer
	agent  *agentConn
	frames syncBucket
	// signer is the verified signer of the first frame, "" if unsigned:
	// only it may resume this session while it is live.
	signer string
}

func (ac *agentConn) address() string {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	return ac.addr
}

// addSession attaches cs under cs.id. A client that names a session id in
// use takes it over (a reconnecting client whose old socket has not yet
// timed out); the previous connection is returned so the caller can close
// it.
func (ac *agentConn) addSession(cs *clientConn) (old *clientConn, err error) {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	switch {
	case ac.gone:
		return nil, errAgentGone
	case ac.sessions[cs.id] == nil && len(ac.sessions) >= ac.s.cfg.MaxSessionsPerAgent:
		return nil, errSessionLimit
	case ac.sessions[cs.id] != nil && (cs.signer == "" || ac.sessions[cs.id].signer != cs.signer):
		// A live session is resumed only by the signer that opened it.
		return nil, errSessionConflict
	}
	old = ac.sessions[cs.id]
	ac.sessions[cs.id] = cs
	if old == nil {
		ac.s.sessions.Add(1)
	}
	return old, nil
}

var (
	errAgentGone       = errors.New("agent disconnected")
	errSessionLimit    = errors.New("agent session limit reached")
	errSessionConflict = errors.New("session in use by another client")
)

func (ac *agentConn) session(id string) *clientConn {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	return ac.sessions[id]
}

// endSession detaches cs if it is still attached. With notify, the agent is
// told with a close frame; an agent that cannot even take that is not
// reading and is dropped.
func (ac *agentConn) endSession(cs *clientConn, notify bool, reason string) {
	ac.mu.Lock()
	cur := ac.sessions[cs.id]
	if cur == cs {
		delete(ac.sessions, cs.id)
		ac.s.sessions.Add(-1)
	}
	ac.mu.Unlock()
	if cur != cs || !notify {
		return
	}
	if !ac.p.sendControl(relay.CloseFrame(cs.id, reason)) && !ac.p.isClosing() {
		ac.s.metrics.slowConsumers.inc("agent")
		ac.s.log.Warn("relay: agent not reading, disconnected", "agent", ac.address())
		ac.p.kill()
	}
}

// idleSessions appends the sessions idle for longer than d. The caller
// holds registry.mu.
func (ac *agentConn) idleSessions(now time.Time, d time.Duration, out []*clientConn) []*clientConn {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	for _, cs := range ac.sessions {
		if now.Sub(cs.p.idleSince()) > d {
			out = append(out, cs)
		}
	}
	return out
}

// end detaches every session, telling each client why, and marks the agent
// offline.
func (ac *agentConn) end(msg string) {
	ac.mu.Lock()
	ac.gone = true
	sessions := ac.sessions
	ac.sessions = map[string]*clientConn{}
	ac.s.sessions.Add(-int64(len(sessions)))
	ac.mu.Unlock()
	for _, cs := range sessions {
		cs.p.fail(relay.ErrorFrame(msg), websocket.StatusGoingAway, "agent gone")
	}
	ac.s.reg.disconnect(ac, ac.s.now())
}

// admit applies the per-IP limits before a WebSocket upgrade. It answers
// the request itself and reports false when the connection is refused.
func (s *Server) admit(w http.ResponseWriter, ip string) bool {
	reason := s.limits.admit(ip, s.now())
	if reason == "" {
		return true
	}
	s.metrics.rejected.inc(reason)
	if reason == "rate_limited" {
		s.metrics.rateLimited.inc("connection")
	}
	w.Header().Set("Retry-After", "5")
	writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many connections from your address; retry later"})
	return false
}

// accept upgrades the request and registers the connection with the
// server. The caller must call the returned release when done.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, kind string) (p *peer, release func(), ok bool) {
	ip := clientIP(r, s.proxies)
	if !s.admit(w, ip) {
		return nil, nil, false
	}
	// A WebSocket lives past the HTTP read timeout.
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.limits.release(ip)
		return nil, nil, false
	}
	if !s.track() {
		s.limits.release(ip)
		s.metrics.rejected.inc("shutting_down")
		ws.Close(websocket.StatusGoingAway, "relay shutting down")
		return nil, nil, false
	}
	ws.SetReadLimit(s.cfg.MaxFrameSize)
	s.metrics.connections.inc(kind)
	begin := time.Now()
	p = newPeer(ws, &s.cfg, s.now())
	s.addPeer(p)
	go p.writeLoop(s.ctx)
	return p, func() {
		p.close(websocket.StatusNormalClosure, "")
		<-p.done
		s.removePeer(p)
		s.limits.release(ip)
		s.metrics.connectionSeconds.WithLabelValues(kind).Observe(time.Since(begin).Seconds())
		s.conns.Done()
	}, true
}

// readErr records why a read ended.
func (s *Server) readErr(err error, kind string) {
	if errors.Is(err, websocket.ErrMessageTooBig) {
		s.metrics.tooLarge.inc(kind)
		s.metrics.disconnects.inc("too_large")
	}
}

// handleAnnounce serves /ws/announce: one agent's connection.
func (s *Server) handleAnnounce(w http.ResponseWriter, r *http.Request) {
	p, release, ok := s.accept(w, r, "agent")
	if !ok {
		return
	}
	defer release()
	ac := &agentConn{s: s, p: p, sessions: map[string]*clientConn{}}
	ac.frames.b = newBucket(s.cfg.AgentFrameRate, s.cfg.AgentFrameBurst, s.now())
	defer func() {
		addr := ac.address()
		msg := fmt.Sprintf("agent %s disconnected from the relay", addr)
		if s.shuttingDown() {
			// The agent went because the relay is going: its clients are
			// told that, whichever of them shutdown reaches first.
			msg = "relay shutting down"
		}
		ac.end(msg)
		if addr != "" {
			s.log.Info("relay: agent disconnected", "agent", addr)
		}
	}()

	timer := time.AfterFunc(s.cfg.AnnounceTimeout, func() {
		s.metrics.announceFailures.inc("timeout")
		p.fail(announceError(fmt.Sprintf("no ANNOUNCE within %s", s.cfg.AnnounceTimeout)), websocket.StatusPolicyViolation, "announce timeout")
	})
	first := true
	for {
		typ, frame, err := p.ws.Read(s.ctx)
		if err != nil {
			timer.Stop()
			s.readErr(err, "agent")
			return
		}
		arrived := time.Now()
		now := s.now()
		p.touch(now)
		if typ != websocket.MessageText {
			s.metrics.dropped.inc("binary")
			continue
		}
		if first {
			timer.Stop()
			if !ac.announce(frame, now, true) {
				return
			}
			first = false
			continue
		}
		if !ac.frames.allow(now) {
			s.metrics.rateLimited.inc("agent_frame")
			s.metrics.dropped.inc("rate_limited")
			continue
		}
		h, err := relay.ParseHeader(frame)
		if err != nil {
			s.metrics.dropped.inc("malformed")
			continue
		}
		switch {
		case h.Type == relay.TypeAnnounce:
			if !ac.announce(frame, now, false) {
				return
			}
		case h.SessionID == "":
			s.metrics.dropped.inc("no_session_id")
		case h.Type == relay.TypeClose:
			if cs := ac.session(h.SessionID); cs != nil {
				ac.endSession(cs, false, "")
				reason := relay.CloseReason(relay.StringField(frame, "reason"))
				if reason == "" {
					reason = "session closed by the agent"
				}
				cs.p.close(websocket.StatusNormalClosure, reason)
			}
		default:
			ac.toClient(h.SessionID, frame, now, arrived)
		}
	}
}

// toClient forwards one agent frame, which arrived at the relay at
// arrived, to its session's client. A client that cannot take it is not
// keeping up and is dropped.
func (ac *agentConn) toClient(id string, frame []byte, now, arrived time.Time) {
	s := ac.s
	cs := ac.session(id)
	if cs == nil {
		s.metrics.dropped.inc("unknown_session")
		return
	}
	if !cs.p.send(frame, arrived, s.metrics.toClient) {
		s.metrics.slowConsumers.inc("client")
		s.log.Debug("relay: client not reading, disconnected", "agent", ac.address(), "session", id)
		ac.endSession(cs, true, "client not reading")
		cs.p.kill()
		return
	}
	cs.p.touch(now)
	s.metrics.forwarded.inc("to_client")
	s.metrics.forwardedBytes.add("to_client", int64(len(frame)))
}

// announce handles an ANNOUNCE on ac. It reports false when the connection
// must end.
func (ac *agentConn) announce(frame []byte, now time.Time, first bool) bool {
	s := ac.s
	defer func(begin time.Time) { s.metrics.announceSeconds.Observe(time.Since(begin).Seconds()) }(time.Now())
	refuse := func(reason, msg string, fatal bool) bool {
		s.metrics.announceFailures.inc(reason)
		s.log.Debug("relay: ANNOUNCE refused", "reason", reason, "bytes", len(frame))
		if fatal {
			ac.p.fail(announceError(msg), websocket.StatusPolicyViolation, "announce refused")
			return false
		}
		ac.p.sendControl(announceError(msg))
		return true
	}
	ann, err := relay.VerifyAnnounce(frame, now, s.cfg.ClockSkew)
	if err != nil {
		var ae *relay.AnnounceError
		if errors.As(err, &ae) {
			return refuse(ae.Reason, ae.Msg, first)
		}
		return refuse("malformed", err.Error(), first)
	}
	if !first && ann.Address != ac.address() {
		return refuse("address_changed", "a connection announces one address; open another connection for "+ann.Address, true)
	}
	if !s.limits.allowAnnounce(ann.Address, now) {
		s.metrics.rateLimited.inc("announce")
		return refuse("rate_limited", "too many ANNOUNCEs for this address; re-announce at most every few seconds", first)
	}
	displaced, err := s.reg.accept(ac, ann, now)
	if err != nil {
		var ae *relay.AnnounceError
		errors.As(err, &ae)
		return refuse(ae.Reason, ae.Msg, first)
	}
	if first {
		ac.mu.Lock()
		ac.addr = ann.Address
		ac.mu.Unlock()
		s.log.Info("relay: agent announced", "agent", ann.Address, "endpoints", len(ann.Endpoints))
	}
	if displaced != nil {
		s.metrics.disconnects.inc("replaced")
		s.log.Info("relay: agent connection replaced by a newer one", "agent", ann.Address)
		displaced.p.fail(relay.ErrorFrame("replaced by a newer ANNOUNCE for "+ann.Address+" on another connection"),
			websocket.StatusPolicyViolation, "replaced")
	}
	s.metrics.announces.inc("")
	ac.p.sendControl(relay.AnnounceOKFrame(ann.Address, ann.Timestamp))
	return true
}

// announceError is the ERROR answering a refused ANNOUNCE.
func announceError(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"type": relay.TypeError, "error": msg, "message": msg, "original_type": relay.TypeAnnounce})
	return b
}

// handleInput serves /ws/input: one client's relayed session.
func (s *Server) handleInput(w http.ResponseWriter, r *http.Request) {
	p, release, ok := s.accept(w, r, "client")
	if !ok {
		return
	}
	defer release()
	cs := &clientConn{p: p}
	cs.frames.b = newBucket(s.cfg.ClientFrameRate, s.cfg.ClientFrameBurst, s.now())

	timer := time.AfterFunc(s.cfg.FirstFrameTimeout, func() {
		p.fail(relay.ErrorFrame(fmt.Sprintf("no frame within %s", s.cfg.FirstFrameTimeout)), websocket.StatusPolicyViolation, "timeout")
	})
	typ, frame, err := p.ws.Read(s.ctx)
	timer.Stop()
	if err != nil {
		s.readErr(err, "client")
		return
	}
	arrived := time.Now()
	refuse := func(reason, msg string) {
		s.metrics.rejected.inc(reason)
		p.fail(relay.ErrorFrame(msg), websocket.StatusPolicyViolation, reason)
	}
	if typ != websocket.MessageText {
		refuse("bad_first_frame", "frames must be JSON text")
		return
	}
	h, err := relay.ParseHeader(frame)
	if err != nil {
		refuse("bad_first_frame", "the first frame must be a JSON object")
		return
	}
	addr, err := trust.NormalizeAddress(h.To)
	if err != nil {
		refuse("bad_first_frame", `the first frame must name the agent: "to": "0x…"`)
		return
	}
	ac := s.reg.connOf(addr)
	if ac == nil {
		refuse("agent_offline", fmt.Sprintf("agent %s is offline: it is not connected to this relay", addr))
		return
	}
	if !s.limits.allowSession(addr, s.now()) {
		s.metrics.rateLimited.inc("session_open")
		refuse("session_limit", fmt.Sprintf("too many new sessions to agent %s; retry later", addr))
		return
	}
	cs.id, cs.agent = sessionID(h), ac
	cs.signer = s.signerOf(frame, addr)
	old, err := ac.addSession(cs)
	switch {
	case errors.Is(err, errAgentGone):
		refuse("agent_offline", fmt.Sprintf("agent %s is offline: it is not connected to this relay", addr))
		return
	case errors.Is(err, errSessionConflict):
		refuse("session_conflict", "session "+cs.id+" is in use by another connection; only the identity that opened it may resume it while it is open (sign the first frame), or start a new session")
		return
	case err != nil:
		refuse("session_limit", fmt.Sprintf("agent %s has too many sessions; retry later", addr))
		return
	}
	if old != nil {
		// The agent ends the old session before the new connection's
		// frames start a fresh one under the same id.
		old.p.fail(relay.ErrorFrame("session taken over by a newer connection"), websocket.StatusPolicyViolation, "taken over")
		ac.p.sendControl(relay.CloseFrame(cs.id, "taken over by a newer connection"))
	}
	defer ac.endSession(cs, true, "client disconnected")

	for {
		if !cs.toAgent(frame, arrived) {
			return
		}
		typ, frame, err = p.ws.Read(s.ctx)
		if err != nil {
			s.readErr(err, "client")
			return
		}
		arrived = time.Now()
		now := s.now()
		p.touch(now)
		if typ != websocket.MessageText {
			s.metrics.dropped.inc("binary")
			p.sendControl(relay.ErrorFrame("frames must be JSON text"))
			frame = nil
			continue
		}
		if !cs.frames.allow(now) {
			s.metrics.rateLimited.inc("client_frame")
			s.metrics.dropped.inc("rate_limited")
			p.sendControl(relay.ErrorFrame("rate limited: too many frames; slow down"))
			frame = nil
			continue
		}
	}
}

// toAgent stamps a client frame, which arrived at the relay at arrived,
// with the session id and queues it for the agent. It reports false when
// the session must end.
func (cs *clientConn) toAgent(frame []byte, arrived time.Time) bool {
	if frame == nil {
		return true
	}
	s := cs.agent.s
	if _, err := relay.ParseHeader(frame); err != nil {
		s.metrics.dropped.inc("malformed")
		cs.p.sendControl(relay.ErrorFrame("frames must be JSON objects"))
		return true
	}
	stamped, err := relay.WithSessionID(frame, cs.id)
	if err != nil {
		s.metrics.dropped.inc("malformed")
		return true
	}
	if !cs.agent.p.send(stamped, arrived, s.metrics.toAgent) {
		s.metrics.dropped.inc("agent_queue_full")
		cs.p.fail(relay.ErrorFrame(fmt.Sprintf("agent %s is not keeping up (its relay queue is full); session closed, retry later", cs.agent.address())),
			websocket.StatusTryAgainLater, "agent congested")
		return false
	}
	s.metrics.forwarded.inc("to_agent")
	s.metrics.forwardedBytes.add("to_agent", int64(len(stamped)))
	return true
}

// signerOf verifies a client's first frame and returns its signer, or ""
// when it is unsigned, badly signed, addressed to another agent or a
// replay of a first frame this relay saw: only a verified signer owns a
// session (the agent checks the signature again, with its own ledger).
func (s *Server) signerOf(frame []byte, agent string) string {
	v, err := trust.NewVerifier(trust.VerifierConfig{Address: agent, Ledger: s.replay, Now: s.now, Window: s.cfg.ClockSkew})
	if err != nil {
		return ""
	}
	m, err := v.Verify(s.ctx, frame)
	if err != nil {
		return ""
	}
	return m.From
}

// sessionID picks the relay session id for a client's first frame: the
// session id the client names, so that resuming a session keeps its id
// end to end, or a fresh random one.
func sessionID(h relay.Header) string {
	switch {
	case relay.ValidSessionID(h.SessionID):
		return h.SessionID
	case !h.HasSessionID && relay.ValidSessionID(h.NestedSessionID):
		return h.NestedSessionID
	}
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
