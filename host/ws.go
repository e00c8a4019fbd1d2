package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/relay"
)

// FrameConn is one client connection carrying protocol frames (JSON text
// messages). It is relay.FrameConn, the module's one frame seam: the
// WebSocket endpoint serves a relay.WSFrameConn and the relay feeds a
// relayed client's frames through the same interface, so both run the
// exact same protocol code (ServeFrames). An error from ReadFrame ends the
// connection.
type FrameConn = relay.FrameConn

// ConnInfo describes a FrameConn's client for the gate.
type ConnInfo struct {
	// Transport is "ws" or "relay".
	Transport  string
	RemoteAddr string
	Header     http.Header
}

// writeTimeout bounds one frame write; a client that cannot take a frame
// in that time is disconnected.
const writeTimeout = 15 * time.Second

// wsConn is the protocol state of one connection. One goroutine (loop)
// owns it; a reader goroutine only hands it frames.
type wsConn struct {
	s    *Server
	fc   FrameConn
	info ConnInfo
	ctx  context.Context

	caller    *Caller
	sessionID string
	// pending is the client's copy of a new session from CONNECT, used by
	// the first INPUT.
	pending *Session
	// resume continues the CONNECT or INPUT that got ONBOARD_REQUIRED once
	// resumeFor (its signer) has onboarded.
	resume    func(Caller) error
	resumeFor string
	sub       *subscriber
	lastSent  int64
	starting  bool
	started   chan startResult

	// Frame binding (wsbind.go).
	nonce  string // sent in CONNECTED; bound frames carry it
	signer string // verified signer of the last CONNECT, admitted or onboarding
	bound  bool   // a CONNECT declared signed frames
	seq    int64  // the last bound frame's seq
	raised bool   // the frame size limit was raised after admission
}

type startResult struct {
	h   *runHandle
	sub *subscriber
	err error
}

// ServeFrames runs the host's WebSocket protocol (docs/protocol.md §3) on fc
// until the client leaves or the host shuts down. It is what /ws runs for
// each websocket, exported so the relay can serve relayed clients.
func (s *Server) ServeFrames(ctx context.Context, fc FrameConn, info ConnInfo) error {
	ctx, cancel := context.WithCancel(ctx)
	c := &wsConn{s: s, fc: fc, info: info, ctx: ctx, started: make(chan startResult, 1), nonce: newNonce()}
	defer func() {
		cancel()
		if c.starting {
			// The client left while a run was being admitted: its start
			// still reports, and a subscriber it attached must be let go,
			// or the session stays live forever.
			if r := <-c.started; r.sub != nil && r.sub != c.sub {
				s.eng.unsubscribe(r.sub)
			}
		}
		if c.sub != nil {
			s.eng.unsubscribe(c.sub)
		}
	}()
	frames := make(chan []byte, 16)
	readErr := make(chan error, 1)
	go func() {
		defer close(frames)
		for {
			b, err := fc.ReadFrame(ctx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case frames <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	every := s.set.ping
	if every <= 0 {
		every = 30 * time.Second
	}
	ping := time.NewTicker(every)
	defer ping.Stop()
	for {
		var evs <-chan event
		var overflow <-chan struct{}
		if c.sub != nil {
			evs, overflow = c.sub.Events(), c.sub.Overflow()
		}
		var err error
		select {
		case b, ok := <-frames:
			if !ok {
				select {
				case err := <-readErr:
					return err
				default:
					return nil
				}
			}
			err = c.handle(b)
		case ev := <-evs:
			err = c.sendEvent(ev)
		case <-overflow:
			err = c.resubscribe()
		case r := <-c.started:
			err = c.onStarted(r)
		case <-ping.C:
			err = c.send(map[string]any{"type": "PING", "ts": s.now().UnixMilli()})
		case <-s.connsDone:
			// Shutdown: runs have ended; deliver what they sent, then go.
			for c.sub != nil {
				select {
				case ev := <-c.sub.Events():
					if err := c.sendEvent(ev); err != nil {
						return err
					}
					continue
				default:
				}
				break
			}
			fc.Close("host shutting down")
			return nil
		case <-ctx.Done():
			fc.Close("connection closed")
			return nil
		}
		if err != nil {
			fc.Close(err.Error())
			return err
		}
	}
}

// closeConns disconnects every WebSocket client once it has been sent the
// events already published.
func (s *Server) closeConns() {
	s.closeConnsOnce.Do(func() { close(s.connsDone) })
}

func (c *wsConn) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding frame: %w", err)
	}
	return c.write(b)
}

func (c *wsConn) write(b []byte) error {
	// Not c.ctx: a write in progress finishes even while the host stops;
	// a dead client fails it within the timeout.
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return c.fc.WriteFrame(ctx, b)
}

// sendError sends ERROR for err, with the HTTP status's meaning as code.
func (c *wsConn) sendError(err error) error {
	status, msg, _ := classify(err)
	code := map[int]string{400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
		409: "session_busy", 413: "too_large", 429: "rate_limited", 503: "unavailable"}[status]
	if code == "" {
		code = "internal"
	}
	if errors.Is(err, errNotWaiting) {
		code, msg = "not_waiting", errNotWaiting.Error()
	}
	return c.send(map[string]any{"type": "ERROR", "message": msg, "code": code})
}

func (c *wsConn) sendEvent(ev event) error {
	if ev.ID <= c.lastSent {
		return nil
	}
	c.lastSent = ev.ID
	b := frame(ev)
	if ev.Type == "OUTPUT" {
		signed, err := c.signOutput(ev, b)
		if err != nil {
			return err
		}
		b = signed
	}
	return c.write(b)
}

// resubscribe catches up a subscriber that fell behind from the store.
func (c *wsConn) resubscribe() error {
	owner := c.s.eng.core.Owner(c.sessionID)
	c.s.eng.unsubscribe(c.sub)
	c.sub = newSubscriber()
	return c.attach(c.sessionID, owner, c.lastSent)
}

// attach subscribes to a session and replays its events after `after`.
func (c *wsConn) attach(id, owner string, after int64) error {
	if c.sub == nil {
		c.sub = newSubscriber()
	}
	replay, err := c.s.eng.subscribe(c.ctx, id, owner, c.sub, after)
	if err != nil {
		c.sub = nil
		return err
	}
	for _, ev := range replay {
		if err := c.sendEvent(ev); err != nil {
			return err
		}
	}
	return nil
}

// handle dispatches one client frame. Errors it returns end the
// connection; refusals are ERROR frames.
func (c *wsConn) handle(b []byte) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return c.sendError(errorf(400, "frame is not a JSON object with a type: %v", err))
	}
	var err error
	switch head.Type {
	case "CONNECT":
		err = c.connect(b)
	case "INPUT":
		err = c.input(b)
	case "PONG":
		return nil
	case "PING":
		return c.send(map[string]any{"type": "PONG", "ts": c.s.now().UnixMilli()})
	case "SESSION_STATUS":
		err = c.status(b)
	case "INTERRUPT":
		err = c.interrupt(b)
	case "APPROVAL_RESPONSE":
		err = c.approval(b)
	case "ASK_USER_RESPONSE":
		err = c.askAnswer(b)
	case "ONBOARD_SUBMIT":
		err = c.onboard(b)
	case "":
		err = errorf(400, "frame has no type")
	default:
		err = errorf(400, "unknown frame type %q", head.Type)
	}
	if err != nil {
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return fatal.err
		}
		if errors.Is(err, errOnboardSent) {
			return nil
		}
		return c.sendError(err)
	}
	return nil
}

// errOnboardSent stops a request whose caller was sent ONBOARD_REQUIRED;
// the request resumes after ONBOARD_SUCCESS.
var errOnboardSent = errors.New("onboarding required")

// fatalError ends the connection (a write failed).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

func fatal(err error) error {
	if err == nil {
		return nil
	}
	return &fatalError{err}
}

// admit runs the gate for a frame. ONBOARD_REQUIRED is sent here, and
// resume is kept to continue the request after ONBOARD_SUCCESS; the error
// is then errOnboardSent.
func (c *wsConn) admit(r *Request, resume func(Caller) error) (Caller, error) {
	caller, err := c.s.admit(c.ctx, r)
	var ob *OnboardRequired
	if errors.As(err, &ob) {
		frame := map[string]any{"type": "ONBOARD_REQUIRED", "identity": ob.Identity, "methods": ob.Methods}
		if ob.PaymentAmount > 0 {
			frame["payment_amount"] = ob.PaymentAmount
		}
		if err := c.send(frame); err != nil {
			return caller, fatal(err)
		}
		c.resume, c.resumeFor = resume, ob.Identity
		if r.Method == "CONNECT" {
			c.signer = ob.Identity
		}
		return caller, errOnboardSent
	}
	return caller, err
}

func (c *wsConn) connect(b []byte) error {
	var f connectFrame
	if err := decodeBody(b, &f); err != nil {
		return err
	}
	var cp *connectPayload
	if f.envelope.signed() && len(f.Payload) > 0 {
		// Applied only once the gate verified these very bytes (directly,
		// or before asking for onboarding).
		cp = &connectPayload{}
		if err := json.Unmarshal(f.Payload, cp); err != nil {
			cp = nil
		}
	}
	resume := func(caller Caller) error { return c.connectAs(caller, &f, cp) }
	caller, _, err := c.admitFrame("CONNECT", b, &f.envelope, false, resume)
	if err != nil {
		return err
	}
	return c.connectAs(caller, &f, cp)
}

// connectAs completes an admitted CONNECT. cp is its signed payload.
func (c *wsConn) connectAs(caller Caller, f *connectFrame, cp *connectPayload) error {
	if err := c.awaitStart(); err != nil {
		return err
	}
	c.caller = &caller
	c.signer = caller.Address
	relayNamed := false
	if cp != nil && caller.Address != "" {
		// What a signed CONNECT says comes from its payload.
		if cp.SignedFrames {
			c.bound = true
		}
		if cp.SignedFrames {
			// A client that signs its frames signs which session it
			// continues, and the host's copy of the conversation is the
			// one that counts: the unsigned fields beside the payload are
			// ignored. The reference client, which signs CONNECT only,
			// keeps naming its session beside the payload.
			f.Session = nil
			if cp.SessionID == nil && c.info.Transport == "relay" && f.SessionID != "" {
				// The relay's id for a new session routes the
				// connection; it may name no session of the signer.
				relayNamed = true
			} else {
				f.SessionID = ""
			}
		}
		if cp.SessionID != nil {
			f.SessionID = *cp.SessionID
		}
		if len(cp.LastMsgID) > 0 {
			f.LastMsgID = cp.LastMsgID
		}
	}
	if c.sub != nil {
		c.s.eng.unsubscribe(c.sub)
		c.sub = nil
	}
	c.lastSent = 0
	sess, stored, newer, err := c.s.eng.sessionFor(c.ctx, caller, f.SessionID, f.Session, false)
	if err != nil {
		return err
	}
	if relayNamed && stored != nil {
		return unauthorized("the relay named a session of yours that this CONNECT's signed payload does not: sign payload.session_id to continue a session")
	}
	c.sessionID = sess.SessionID
	reply := map[string]any{"type": "CONNECTED", "session_id": sess.SessionID, "nonce": c.nonce}
	after := int64(1<<62 - 1)
	if stored == nil {
		reply["status"] = "new"
		c.pending = sess
		if len(sess.Messages) == 0 {
			c.pending = nil
		}
	} else {
		c.pending = nil
		reply["status"] = "connected"
		if c.s.eng.core.Running(sess.SessionID) {
			reply["status"] = "running"
		}
		if newer {
			reply["server_newer"] = true
		}
		reply["session"] = sess
		reply["chat_items"] = chatItems(sess.Messages)
		if len(f.LastMsgID) > 0 && string(f.LastMsgID) != "null" {
			after = parseMsgID(f.LastMsgID)
		}
	}
	frame, err := json.Marshal(reply)
	if err != nil {
		return fmt.Errorf("encoding frame: %w", err)
	}
	fields := map[string]any{"session_id": sess.SessionID, "status": reply["status"]}
	if f.Signature != "" {
		fields["connect"] = signatureDigest(f.Signature)
	}
	if frame, err = c.hostSigned(frame, "CONNECTED", fields); err != nil {
		return err
	}
	if err := c.write(frame); err != nil {
		return fatal(err)
	}
	if after < 1<<62-1 {
		c.lastSent = after
	}
	if err := c.attach(sess.SessionID, caller.Address, after); err != nil {
		return err
	}
	if stored == nil {
		c.lastSent = 0
	}
	return nil
}

// parseMsgID reads last_msg_id as a number or a numeric string; anything
// else replays the whole session.
func parseMsgID(raw json.RawMessage) int64 {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return 0
	}
	switch x := v.(type) {
	case float64:
		return int64(x)
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err == nil {
			return n
		}
	}
	return 0
}

func (c *wsConn) input(b []byte) error {
	var f inputFrame
	if err := decodeBody(b, &f); err != nil {
		return err
	}
	if f.envelope.signed() {
		p, err := signedPrompt(f.Payload, f.Prompt)
		var fe *fieldError
		if errors.As(err, &fe) {
			return jsonError(err)
		}
		if err != nil {
			return err
		}
		f.prompt = p
		// A signed INPUT names its session in its payload, if at all: the
		// top-level session_id is the relay's to rewrite.
		var sp struct {
			SessionID string `json:"session_id"`
		}
		json.Unmarshal(f.Payload, &sp)
		f.SessionID = sp.SessionID
	} else {
		if f.Prompt == nil || *f.Prompt == "" {
			return errorf(400, "field \"prompt\" is required and must not be empty")
		}
		f.prompt = *f.Prompt
	}
	needsDigest := f.Session != nil || len(f.Images) > 0 || len(f.Files) > 0
	resume := func(caller Caller) error { c.caller = &caller; return c.inputAs(&f) }
	caller, _, err := c.admitFrame("INPUT", b, &f.envelope, needsDigest, resume)
	if err != nil {
		return err
	}
	c.caller = &caller
	return c.inputAs(&f)
}

// inputAs starts the run of an admitted INPUT as c.caller.
func (c *wsConn) inputAs(f *inputFrame) error {
	if err := c.awaitStart(); err != nil {
		return err
	}
	rt := c.s.current()
	parts, err := attachments(rt.cfg, f.Images, f.Files, uploadOwner{caller: *c.caller, remote: c.info.RemoteAddr}, c.s.now)
	if err != nil {
		return err
	}
	in := runInput{caller: *c.caller, sessionID: c.sessionID, session: c.pending, prompt: f.prompt, parts: parts, interactive: true,
		uploads: uploadsDirOf(rt.cfg, uploadOwner{caller: *c.caller, remote: c.info.RemoteAddr})}
	if f.SessionID != "" || f.Session != nil {
		in.sessionID, in.session = f.SessionID, f.Session
	}
	named := in.sessionID
	if named == "" && in.session != nil {
		named = in.session.SessionID
	}
	in.issued = named != "" && named == c.sessionID
	// The connection's subscriber already follows its session; a run in
	// another session gets a new one, attached by start before the run's
	// first event (and never touched by this goroutine until then).
	var sub *subscriber
	if in.sessionID != c.sessionID || c.sub == nil {
		sub = newSubscriber()
	}
	c.starting = true
	go func() {
		h, err := c.s.eng.start(c.ctx, in, sub)
		c.started <- startResult{h: h, sub: sub, err: err}
	}()
	return nil
}

// awaitStart settles a start still in flight before the next frame acts
// on the connection's session: a fast run can deliver its OUTPUT before the
// loop has seen that its start returned, and a client answering that
// OUTPUT at once must not be refused as busy.
func (c *wsConn) awaitStart() error {
	if !c.starting {
		return nil
	}
	select {
	case r := <-c.started:
		return c.onStarted(r)
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

// onStarted adopts a started run's session and subscriber.
func (c *wsConn) onStarted(r startResult) error {
	c.starting = false
	if r.err != nil {
		return c.sendError(r.err)
	}
	c.pending = nil
	if r.sub != nil && r.sub != c.sub {
		if c.sub != nil {
			c.s.eng.unsubscribe(c.sub)
		}
		c.sub = r.sub
		c.lastSent = 0
	}
	c.sessionID = r.h.sessionID
	return nil
}

func (c *wsConn) status(b []byte) error {
	var f statusFrame
	if err := decodeBody(b, &f); err != nil {
		return err
	}
	caller, payload, err := c.admitFrame("SESSION_STATUS", b, &f.envelope, false, nil)
	if err != nil {
		return err
	}
	if payload != nil {
		// A signed SESSION_STATUS names its session in the payload.
		f = statusFrame{}
		json.Unmarshal(payload, &f)
	}
	id := f.SessionID
	if f.Session != nil && f.Session.SessionID != "" {
		id = f.Session.SessionID
	}
	if id == "" {
		id = c.sessionID
	}
	ss, err := c.s.eng.getSession(c.ctx, caller, id)
	if errors.Is(err, store.ErrNotFound) && id != c.sessionID {
		// The session this caller started by naming id (engine.sessionFor).
		ss, err = c.s.eng.getSession(c.ctx, caller, c.s.eng.derivedID(caller.Address, id))
		if err == nil && ss.Owner != caller.Address {
			err = fmt.Errorf("session %s: %w", id, store.ErrNotFound)
		}
	}
	if errors.Is(err, store.ErrNotFound) && id == c.sessionID {
		return c.sendStatus(map[string]any{"type": "SESSION_STATUS", "session_id": id, "status": "new"}, id, "new", "")
	}
	if err != nil {
		return err
	}
	v, err := c.s.eng.view(c.ctx, ss)
	if err != nil {
		return err
	}
	return c.sendStatus(map[string]any{"type": "SESSION_STATUS", "session_id": v.SessionID, "status": v.Status,
		"result": v.Result, "session": v.Session, "chat_items": v.ChatItems}, v.SessionID, v.Status, v.Result)
}

// sendStatus sends a SESSION_STATUS answer signed by the host (wsbind.go).
func (c *wsConn) sendStatus(reply map[string]any, id, status, result string) error {
	b, err := json.Marshal(reply)
	if err != nil {
		return fmt.Errorf("encoding frame: %w", err)
	}
	sum := sha256.Sum256([]byte(result))
	b, err = c.hostSigned(b, "SESSION_STATUS", map[string]any{"session_id": id, "status": status, "result_sha256": hex.EncodeToString(sum[:])})
	if err != nil {
		return err
	}
	return fatal(c.write(b))
}

func (c *wsConn) interrupt(b []byte) error {
	var f struct {
		Type string `json:"type"`
		envelope
	}
	if err := decodeBody(b, &f); err != nil {
		return err
	}
	caller, _, err := c.admitFrame("INTERRUPT", b, &f.envelope, false, nil)
	if err != nil {
		return err
	}
	if c.sessionID == "" || !c.s.eng.interrupt(c.sessionID, caller) {
		return c.send(map[string]any{"type": "ERROR", "message": "nothing is running in this session", "code": "not_running"})
	}
	return nil
}
