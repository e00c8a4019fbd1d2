package client

import (
	"errors"
	"fmt"
)

// Errors the client wraps; test with errors.Is.
var (
	// ErrUnauthorized: the agent wants a (valid) signature (401,
	// ERROR code "unauthorized").
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the agent's trust policy refused the caller (403,
	// "forbidden").
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: no such session, or no such agent on the relay (404,
	// "not_found").
	ErrNotFound = errors.New("not found")
	// ErrBusy: the session is running another request (409,
	// "session_busy").
	ErrBusy = errors.New("session busy")
	// ErrBadRequest: the agent refused the request as malformed (400).
	ErrBadRequest = errors.New("bad request")
	// ErrTooLarge: the request is over the agent's limits (413).
	ErrTooLarge = errors.New("request too large")
	// ErrUnavailable: the agent is overloaded or shutting down (503).
	ErrUnavailable = errors.New("agent unavailable")
	// ErrOffline: the agent cannot be reached: not at its URL, not at
	// any announced endpoint, and not connected to the relay.
	ErrOffline = errors.New("agent offline")
	// ErrOnboardRequired: the agent admits this caller only after
	// onboarding and no invite code was given (WithInviteCode).
	ErrOnboardRequired = errors.New("onboarding required")
	// ErrConnectionLost: the connection to the agent or the relay ended
	// before the answer came (the agent, the relay or the network went
	// away mid-run). The run may go on at the agent; its session id is
	// in the error's *Error, so the result can be fetched or resumed.
	ErrConnectionLost = errors.New("connection lost")
	// ErrInterrupted: the run was interrupted at the agent.
	ErrInterrupted = errors.New("run interrupted")
	// ErrUnsupported: the operation is not possible over this
	// connection (e.g. listing sessions through a relay).
	ErrUnsupported = errors.New("not supported over this connection")
	// ErrTampered: an answer did not come signed by the agent for this
	// connection, or does not match its signature: something between the
	// client and the agent (a relay, a ws:// hop) changed or made it.
	ErrTampered = errors.New("answer not signed by the agent")
	// ErrNoRelay: the agent was given by address and no relay was named
	// to find it through (WithRelay, $AGENTHOST_RELAY_URL).
	ErrNoRelay = errors.New("client: no relay")
)

// Error is an error reported by the agent or the relay, or the loss of the
// connection. It wraps one of the sentinel errors.
type Error struct {
	// Kind is the sentinel this error wraps.
	Kind error
	// Code is the agent's ERROR code ("forbidden", …) or "" .
	Code string
	// Status is the HTTP status for HTTP requests, else 0.
	Status int
	// Message is the agent's or relay's explanation.
	Message string
	// SessionID is the session the request ran in, when known.
	SessionID string
}

func (e *Error) Error() string {
	msg := e.Kind.Error()
	if e.Message != "" && e.Message != msg {
		msg += ": " + e.Message
	}
	if e.SessionID != "" {
		msg += " (session " + e.SessionID + ")"
	}
	return "agent: " + msg
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Kind }

// codeKinds maps ERROR codes to sentinels.
var codeKinds = map[string]error{
	"unauthorized": ErrUnauthorized,
	"forbidden":    ErrForbidden,
	"not_found":    ErrNotFound,
	"session_busy": ErrBusy,
	"bad_request":  ErrBadRequest,
	"too_large":    ErrTooLarge,
	"unavailable":  ErrUnavailable,
}

// statusKinds maps HTTP statuses to sentinels.
var statusKinds = map[int]error{
	401: ErrUnauthorized,
	403: ErrForbidden,
	404: ErrNotFound,
	409: ErrBusy,
	400: ErrBadRequest,
	413: ErrTooLarge,
	503: ErrUnavailable,
}

// errorFromCode builds the error of an ERROR frame. Frames without a known
// code (relay errors, "internal") are classified by their text.
func errorFromCode(code, msg, session string) *Error {
	kind, ok := codeKinds[code]
	if !ok {
		kind = errors.New("error")
		if code != "" {
			kind = fmt.Errorf("error %s", code)
		}
	}
	return &Error{Kind: kind, Code: code, Message: msg, SessionID: session}
}
