package host

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/trust"
)

// Frame binding (docs/trust.md, "Signed frames"). A WebSocket or relayed
// connection carries many frames after one CONNECT; a signature on CONNECT
// alone says nothing about the frames that follow, which anyone on the
// path (a relay, a ws:// hop) could add. So:
//
//   - every CONNECTED carries a fresh random nonce for the connection, and
//     is signed by the host;
//   - a client that signs its frames puts {"type", "conn": <nonce>, "seq":
//     n} in each frame's payload, n growing with each frame, and the host
//     takes what the frame does (prompt, approval, answer) from that
//     payload; a signed frame bound to another connection, or whose seq is
//     not after the last one, is refused;
//   - a CONNECT whose signed payload says "signed_frames": true makes every
//     state-changing frame on the connection (INPUT, APPROVAL_RESPONSE,
//     ASK_USER_RESPONSE, INTERRUPT, ONBOARD_SUBMIT, a new CONNECT) need
//     that binding; unsigned ones are refused;
//   - the host signs each OUTPUT it sends, binding the result and session
//     to the connection, so a client can tell an answer a relay rewrote.
//
// Unsigned frames on a connection whose CONNECT was signed without
// signed_frames (the reference TypeScript client) go through the gate as
// that signer's (Request.Connection): admitted where the policy admits
// anonymous callers (open, careful), refused under strict.

// stateChanging are the frames that act: they must be signed and bound on
// a connection that declared signed frames.
var stateChanging = map[string]bool{
	"CONNECT": true, "INPUT": true, "APPROVAL_RESPONSE": true, "ASK_USER_RESPONSE": true,
	"INTERRUPT": true, "ONBOARD_SUBMIT": true,
}

// binding is the part of a signed frame's payload that binds it to its
// connection.
type binding struct {
	Type string `json:"type"`
	Conn string `json:"conn"`
	Seq  *int64 `json:"seq"`
}

// newNonce returns a connection's binding nonce.
func newNonce() string { return ids.Token(16) }

// signed reports whether a frame claims a signature.
func (en *envelope) signed() bool {
	return en.Signature != "" || en.From != "" || (len(en.Payload) > 0 && string(en.Payload) != "null")
}

// readLimiter is a FrameConn whose frame size limit can change: small
// until the gate admits the caller, the upload limits after.
type readLimiter interface{ SetReadLimit(n int64) }

// admitted raises the connection's frame limit once a caller is admitted.
func (c *wsConn) admitted() {
	if rl, ok := c.fc.(readLimiter); ok && !c.raised {
		c.raised = true
		rl.SetReadLimit(maxInputBody(c.s.current().cfg))
	}
}

// admitFrame runs the gate for one client frame of type typ and checks its
// binding. It returns the caller the frame acts as and, for a signed frame
// the gate verified, the verified payload to take the frame's fields from.
// resume continues the frame after onboarding (see admit).
func (c *wsConn) admitFrame(typ string, b []byte, env *envelope, needsDigest bool, resume func(Caller) error) (Caller, json.RawMessage, error) {
	if !env.signed() {
		if c.bound && stateChanging[typ] {
			return Caller{}, nil, unauthorized(fmt.Sprintf("signature required: this connection's CONNECT declared signed frames; sign %s with the connection's nonce and the next seq", typ))
		}
		r := &Request{Transport: c.info.Transport, Method: typ, Path: "/ws", RemoteAddr: c.info.RemoteAddr, Connection: c.caller}
		caller, err := c.admit(r, resume)
		if err != nil {
			return Caller{}, nil, err
		}
		if c.caller != nil && caller.Address != c.caller.Address {
			caller = *c.caller
		}
		c.admitted()
		return caller, nil, nil
	}
	r := env.request(c.info, typ, b)
	r.ConnSigner, r.NeedsDigest = c.signer, needsDigest
	caller, err := c.admit(r, resume)
	if err != nil {
		return Caller{}, nil, err
	}
	if err := c.checkBinding(typ, caller); err != nil {
		return Caller{}, nil, err
	}
	c.admitted()
	return caller, caller.Payload, nil
}

// checkBinding checks the binding of a signed, admitted frame.
func (c *wsConn) checkBinding(typ string, caller Caller) error {
	if caller.Payload == nil {
		return nil // a gate that verifies nothing: nothing to bind
	}
	var bp binding
	if err := json.Unmarshal(caller.Payload, &bp); err != nil {
		return unauthorized("the signed payload is not an object")
	}
	if bp.Type != "" && bp.Type != typ {
		return unauthorized(fmt.Sprintf("the signed payload is for a %s frame, not %s", clipString(bp.Type, 40), typ))
	}
	switch {
	case bp.Conn != "":
		if bp.Conn != c.nonce {
			return unauthorized("the frame is bound to another connection (payload.conn is not this connection's nonce)")
		}
		if bp.Type == "" {
			return unauthorized("a bound frame's payload must name its type")
		}
		if bp.Seq == nil || *bp.Seq <= c.seq {
			return unauthorized(fmt.Sprintf("payload.seq must be after %d: the frame was replayed or reordered", c.seq))
		}
		if c.signer != "" && caller.Address != c.signer && typ != "CONNECT" {
			return unauthorized("the frame is signed by another identity than this connection's CONNECT")
		}
		c.seq = *bp.Seq
	case c.bound && typ != "CONNECT" && stateChanging[typ]:
		return unauthorized("this connection declared signed frames: put the connection's nonce (payload.conn) and the next seq (payload.seq) in each frame's payload")
	}
	return nil
}

// hostSigned adds the host's signature to a server frame: fields is the
// signed payload (type, the connection's nonce, the client's address and a
// timestamp are added), and the envelope goes beside the frame's own
// members.
func (c *wsConn) hostSigned(frame []byte, typ string, fields map[string]any) ([]byte, error) {
	fields["type"] = typ
	if c.nonce != "" {
		fields["nonce"] = c.nonce
	}
	if c.signer != "" {
		fields["to"] = c.signer
	}
	fields["timestamp"] = c.s.now().Unix()
	env, err := trust.Sign(c.s.id, fields)
	if err != nil {
		return nil, err
	}
	if len(frame) < 2 || frame[len(frame)-1] != '}' {
		return nil, errors.New("server frame is not an object")
	}
	out := make([]byte, 0, len(frame)+len(env.Payload)+200)
	out = append(out, frame[:len(frame)-1]...)
	if len(frame) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"payload":`...)
	out = append(out, env.Payload...)
	out = append(out, `,"from":`...)
	out = strconv.AppendQuote(out, env.From)
	out = append(out, `,"signature":`...)
	out = strconv.AppendQuote(out, env.Signature)
	return append(out, '}'), nil
}

// signOutput signs an OUTPUT event for this connection: its event id, the
// session id, the SHA-256 of the result and the digest of the session
// (trust.BodyDigest of the frame's "session"). An event fresh from the
// engine carries those in its note, computed once for every connection;
// one read back from the store is parsed for them.
func (c *wsConn) signOutput(ev event, frame []byte) ([]byte, error) {
	var (
		f   outputSigFields
		err error
	)
	if n, ok := ev.Note.(*outputNote); ok {
		f, err = n.sigFields()
	} else {
		var out struct {
			SessionID string          `json:"session_id"`
			Result    string          `json:"result"`
			Session   json.RawMessage `json:"session"`
		}
		if err := json.Unmarshal(ev.Data, &out); err != nil {
			return nil, fmt.Errorf("signing OUTPUT: %w", err)
		}
		f, err = outputFields(out.SessionID, out.Result, out.Session)
	}
	if err != nil {
		return nil, fmt.Errorf("signing OUTPUT: %w", err)
	}
	fields := map[string]any{"event_id": ev.ID, "session_id": f.sessionID, "result_sha256": f.resultSHA256}
	if f.digest != "" {
		fields["digest"] = f.digest
	}
	return c.hostSigned(frame, "OUTPUT", fields)
}

// connectPayload is what a signed CONNECT's payload may say.
type connectPayload struct {
	SignedFrames bool            `json:"signed_frames"`
	SessionID    *string         `json:"session_id"`
	LastMsgID    json.RawMessage `json:"last_msg_id"`
}

// signatureDigest identifies a signed frame for the host's answer to it.
func signatureDigest(sig string) string {
	sum := sha256.Sum256([]byte(sig))
	return hex.EncodeToString(sum[:])
}
