package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/platform/store"
)

// The runtime's control API is the seed's per-agent API with
// /api/v1/agents/{id} replaced by controlPrefix, behind the agent's
// control token (docs/runtime-control.md).
const controlPrefix = "/control"

// maxRuntimeAnswer bounds a JSON answer read from a runtime (a long
// history is large, but not unbounded).
const maxRuntimeAnswer = 64 << 20

// errNotResponding is the 502 of a runtime that cannot be reached.
const errNotResponding = "agent is not responding"

// target is what a per-agent request acts on: a RUNNING agent and, for
// requests made with a session capability, the one session it grants
// (empty: the whole agent, for an organization's token).
type target struct {
	agent   store.Agent
	session string
}

// controlCall is one request to a runtime's control API.
type controlCall struct {
	method      string
	path        string // below controlPrefix, e.g. "/messages"
	query       url.Values
	body        io.Reader
	contentType string
	lastEventID string
	// timeout bounds the whole exchange; zero means none (event streams,
	// which end with the client's request).
	timeout time.Duration
}

// agentOf resolves the path's agent within the caller's organization: a
// foreign or unknown id is 404. It does not check the agent's state.
func (s *Server) agentOf(r *http.Request) (store.Agent, error) {
	a, err := s.cfg.Agents.Get(r.Context(), orgID(r), r.PathValue("agentId"))
	return a, missing("agent", err)
}

// running checks that an agent can be talked to: 400 otherwise, as the
// seed says.
func running(a store.Agent) error {
	if a.Status != store.StatusRunning {
		return httpjson.BadRequest("agent is not running (status %s)", a.Status)
	}
	return nil
}

// callRuntime sends c to a's runtime. The returned cancel releases the
// call's context once the response body has been read. A runtime that
// cannot be reached is a 502 *httpjson.Error.
func (s *Server) callRuntime(ctx context.Context, a store.Agent, c controlCall) (*http.Response, context.CancelFunc, error) {
	ctl, err := s.cfg.Agents.Control(a)
	if err != nil {
		return nil, nil, err
	}
	u := ctl.Endpoint + controlPrefix + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	cancel := context.CancelFunc(func() {})
	if c.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u, c.body)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+ctl.Token)
	if c.path == "/events" {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.lastEventID != "" {
		req.Header.Set("Last-Event-ID", c.lastEventID)
	}
	resp, err := s.runtimeHTTP.Do(req)
	if err != nil {
		// Ask why before cancel: cancel itself cancels ctx, and would make
		// every failed connection look like a client that left.
		left := ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled)
		cancel()
		if left {
			// The client went away (or the platform is shutting down).
			return nil, nil, &httpjson.Error{Status: http.StatusServiceUnavailable, Msg: "request cancelled", Err: err}
		}
		return nil, nil, &httpjson.Error{Status: http.StatusBadGateway, Msg: errNotResponding, Err: fmt.Errorf("agent %s: %w", a.ID, err)}
	}
	return resp, cancel, nil
}

// callJSON sends c and decodes the runtime's JSON answer. A runtime error
// keeps its status and message when it is the caller's to fix (400, 404,
// 409, 413); anything else from the runtime is 502.
func (s *Server) callJSON(ctx context.Context, a store.Agent, c controlCall) (any, int, error) {
	if c.timeout == 0 {
		c.timeout = s.cfg.RuntimeTimeout
	}
	resp, cancel, err := s.callRuntime(ctx, a, c)
	if err != nil {
		return nil, 0, err
	}
	defer cancel()
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRuntimeAnswer+1))
	if err != nil {
		return nil, 0, &httpjson.Error{Status: http.StatusBadGateway, Msg: errNotResponding, Err: fmt.Errorf("agent %s: reading answer: %w", a.ID, err)}
	}
	if len(b) > maxRuntimeAnswer {
		return nil, 0, &httpjson.Error{Status: http.StatusBadGateway, Msg: "the agent's answer is too large", Err: fmt.Errorf("agent %s: over %d bytes", a.ID, maxRuntimeAnswer)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, 0, runtimeError(a.ID, c.path, resp.StatusCode, b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers pass through exactly as the runtime wrote them
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, 0, &httpjson.Error{Status: http.StatusBadGateway, Msg: "the agent answered with invalid JSON", Err: fmt.Errorf("agent %s %s: %w", a.ID, c.path, err)}
	}
	return v, resp.StatusCode, nil
}

// runtimeError maps a runtime's error answer to the platform's.
func runtimeError(agentID, path string, status int, body []byte) error {
	var eb httpjson.ErrorBody
	_ = json.Unmarshal(body, &eb)
	msg := strings.TrimSpace(eb.Error)
	cause := fmt.Errorf("agent %s %s: runtime answered %d: %.200s", agentID, path, status, body)
	switch status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge:
		if msg == "" {
			msg = strings.ToLower(http.StatusText(status))
		}
		return &httpjson.Error{Status: status, Msg: msg, Err: cause}
	}
	if msg == "" {
		msg = errNotResponding
	} else {
		msg = "agent failed: " + msg
	}
	return &httpjson.Error{Status: http.StatusBadGateway, Msg: msg, Err: cause}
}

// jsonBody encodes v for a control call.
func jsonBody(v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		panic("api: encoding a control request: " + err.Error())
	}
	return bytes.NewReader(b)
}

// object is a JSON object from a runtime, or nil when v is not one.
func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// list is a JSON array field of a runtime's object, nil when absent.
func list(m map[string]any, key string) []any {
	l, _ := m[key].([]any)
	return l
}

// replySuffix ends the control path of a reply to a pending permission or
// question: /control/permissions/{id}/reply, as the seed's route.
const replySuffix = "/reply"
