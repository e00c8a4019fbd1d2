package host

import (
	"encoding/json"
)

// The client frames of docs/protocol.md §3 and the handlers of the answers a
// run waits for (approvals, questions) and of onboarding.

// frame fields shared by CONNECT, INPUT and ONBOARD_SUBMIT.
type envelope struct {
	Payload   json.RawMessage `json:"payload"`
	From      string          `json:"from"`
	Signature string          `json:"signature"`
	Timestamp *float64        `json:"timestamp"`
	To        string          `json:"to"`
}

func (en *envelope) request(info ConnInfo, method string, frame []byte) *Request {
	r := &Request{Transport: info.Transport, Method: method, Path: "/ws", RemoteAddr: info.RemoteAddr,
		From: en.From, Signature: en.Signature}
	if en.Signature != "" || en.From != "" || len(en.Payload) > 0 {
		r.Body = frame
	}
	if len(en.Payload) > 0 && string(en.Payload) != "null" {
		r.Payload = en.Payload
	}
	if en.Timestamp != nil {
		r.Timestamp = int64(*en.Timestamp)
	}
	return r
}

type connectFrame struct {
	Type      string          `json:"type"`
	SessionID string          `json:"session_id"`
	Session   *Session        `json:"session"`
	LastMsgID json.RawMessage `json:"last_msg_id"`
	envelope
}

type inputFrame struct {
	Type      string      `json:"type"`
	Prompt    *string     `json:"prompt"`
	InputID   string      `json:"input_id"`
	Images    []string    `json:"images"`
	Files     []fileInput `json:"files"`
	SessionID string      `json:"session_id"`
	Session   *Session    `json:"session"`
	envelope
	// prompt is what runs: the signed payload's prompt when signed.
	prompt string
}

type statusFrame struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Session   *struct {
		SessionID string `json:"session_id"`
	} `json:"session"`
	envelope
}

type approvalFrame struct {
	Type     string `json:"type"`
	Approved *bool  `json:"approved"`
	Scope    string `json:"scope"`
	Feedback string `json:"feedback"`
	envelope
}

type askFrame struct {
	Type   string          `json:"type"`
	Answer json.RawMessage `json:"answer"`
	envelope
}

type bareFrame struct {
	Type string `json:"type"`
	Ts   any    `json:"ts"`
}

// A signed answer is taken from its verified payload alone: whatever the
// frame says beside it is what the relay or anyone on the way could have
// written.

func (c *wsConn) approval(b []byte) error {
	var f approvalFrame
	if err := decodeBody(b, &f); err != nil {
		return err
	}
	caller, payload, err := c.admitFrame("APPROVAL_RESPONSE", b, &f.envelope, false, nil)
	if err != nil {
		return err
	}
	if payload != nil {
		f = approvalFrame{}
		if err := json.Unmarshal(payload, &f); err != nil {
			return errorf(400, "payload: %v", err)
		}
	}
	if f.Approved == nil {
		return errorf(400, "field \"approved\" is required (true or false)")
	}
	if f.Scope != "" && f.Scope != "once" && f.Scope != "session" {
		return errorf(400, "field \"scope\" must be \"once\" or \"session\"")
	}
	return c.s.eng.answer(c.ctx, c.sessionID, caller, kindApproval, approvalResponse{Approved: *f.Approved, Scope: f.Scope, Feedback: f.Feedback})
}

func (c *wsConn) askAnswer(b []byte) error {
	var f askFrame
	if err := decodeBody(b, &f); err != nil {
		return err
	}
	caller, payload, err := c.admitFrame("ASK_USER_RESPONSE", b, &f.envelope, false, nil)
	if err != nil {
		return err
	}
	if payload != nil {
		f = askFrame{}
		if err := json.Unmarshal(payload, &f); err != nil {
			return errorf(400, "payload: %v", err)
		}
	}
	var one string
	var many []string
	switch {
	case json.Unmarshal(f.Answer, &one) == nil && len(f.Answer) > 0 && f.Answer[0] == '"':
		many = []string{one}
	case json.Unmarshal(f.Answer, &many) == nil && len(f.Answer) > 0 && f.Answer[0] == '[':
	default:
		return errorf(400, "field \"answer\" must be a string or a list of strings")
	}
	return c.s.eng.answer(c.ctx, c.sessionID, caller, kindAsk, many)
}

// onboard handles ONBOARD_SUBMIT through the gate, when the gate can
// onboard (the trust policy's invite codes and payments).
func (c *wsConn) onboard(b []byte) error {
	var f struct {
		Type string `json:"type"`
		envelope
	}
	if err := decodeBody(b, &f); err != nil {
		return err
	}
	ob, ok := c.s.current().gate.(Onboarder)
	if !ok {
		return errorf(400, "onboarding is not enabled on this host")
	}
	if c.bound && !f.envelope.signed() {
		return unauthorized("signature required: sign ONBOARD_SUBMIT with the connection's nonce and the next seq")
	}
	r := f.request(c.info, "ONBOARD_SUBMIT", b)
	r.ConnSigner = c.signer
	caller, msg, err := ob.Onboard(c.ctx, r)
	if err != nil {
		return err
	}
	if err := c.checkBinding("ONBOARD_SUBMIT", caller); err != nil {
		return err
	}
	c.caller = &caller
	if err := c.send(map[string]any{"type": "ONBOARD_SUCCESS", "identity": caller.Address, "level": caller.Level, "message": msg}); err != nil {
		return fatal(err)
	}
	// The request that asked for onboarding goes on as the new contact.
	if resume := c.resume; resume != nil && c.resumeFor == caller.Address {
		c.resume = nil
		return resume(caller)
	}
	return nil
}
