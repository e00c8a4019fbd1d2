package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/agenthost/agenthost/trust"
)

// SessionInfo is a stored session as GET /sessions/{id} shows it.
type SessionInfo struct {
	SessionID string `json:"session_id"`
	// Status is "running", "done", "failed", "interrupted" or
	// "waiting_approval".
	Status string `json:"status"`
	Prompt string `json:"prompt"`
	Result string `json:"result"`
	// Session is the session state (messages, turn, …).
	Session   json.RawMessage `json:"session"`
	ChatItems json.RawMessage `json:"chat_items"`
	// Created, Updated and Expires are Unix seconds (Expires 0: never or
	// still running).
	Created    int64 `json:"created"`
	Updated    int64 `json:"updated"`
	Expires    int64 `json:"expires"`
	DurationMS int64 `json:"duration_ms"`
}

// SessionItem is one entry of GET /sessions.
type SessionItem struct {
	SessionID string `json:"session_id"`
	Status    string `json:"status"`
	Created   int64  `json:"created"`
	Prompt    string `json:"prompt"`
}

// Sessions lists the caller's sessions (a signed caller sees only its own;
// unsigned listing works only on agents under trust "open"). It needs a
// direct connection: through a relay it is ErrUnsupported.
func (c *Client) Sessions(ctx context.Context) ([]SessionItem, error) {
	if c.base == "" {
		return nil, &Error{Kind: ErrUnsupported, Message: "listing sessions needs the agent's own URL; the relay forwards only the WebSocket protocol"}
	}
	var out struct {
		Sessions []SessionItem `json:"sessions"`
	}
	if err := c.get(ctx, "/sessions", &out); err != nil {
		return nil, err
	}
	return out.Sessions, nil
}

// Session returns the session id: its status, last prompt and result. A
// session that is not the caller's is ErrNotFound. Through a relay it is
// asked for over the WebSocket (SESSION_STATUS).
func (c *Client) Session(ctx context.Context, id string) (*SessionInfo, error) {
	if id == "" {
		return nil, &Error{Kind: ErrBadRequest, Message: "empty session id"}
	}
	if c.base == "" {
		return c.sessionOverWS(ctx, id)
	}
	var s SessionInfo
	if err := c.get(ctx, "/sessions/"+url.PathEscape(id), &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// sessionOverWS asks for a session's status over a (relayed) WebSocket.
func (c *Client) sessionOverWS(ctx context.Context, id string) (*SessionInfo, error) {
	k, err := c.open(ctx, id, -1)
	if err != nil {
		return nil, err
	}
	defer k.ws.CloseNow()
	msg, err := k.bound("SESSION_STATUS", map[string]any{"session_id": id}, map[string]any{"session": map[string]any{"session_id": id}})
	if err != nil {
		return nil, err
	}
	if err := k.send(ctx, msg); err != nil {
		return nil, err
	}
	for {
		f, err := k.read(ctx)
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case "SESSION_STATUS":
			if err := k.checkResult(f); err != nil {
				return nil, err
			}
			k.close()
			if f.Status == "new" || f.Sess != id {
				return nil, &Error{Kind: ErrNotFound, Message: "session " + id}
			}
			return &SessionInfo{SessionID: f.Sess, Status: f.Status, Result: stringOf(f.Result),
				Session: f.Session, ChatItems: f.ChatItems}, nil
		case "ERROR":
			return nil, k.errorOf(f)
		case "PING":
			if err := k.send(ctx, map[string]any{"type": "PONG"}); err != nil {
				return nil, err
			}
		}
	}
}

// get does a (signed) GET of path on the agent and decodes the answer.
func (c *Client) get(ctx context.Context, path string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if c.id != nil {
		for k, v := range trust.SignHeaders(c.id, http.MethodGet, req.URL.EscapedPath(), c.address, c.o.now()) {
			req.Header[k] = v
		}
	}
	resp, err := c.o.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", ErrOffline, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &Error{Kind: ErrConnectionLost, Message: err.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		kind := statusKinds[resp.StatusCode]
		if kind == nil {
			kind = fmt.Errorf("HTTP %s", resp.Status)
		}
		return &Error{Kind: kind, Status: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("client: decoding %s: %w", path, err)
	}
	return nil
}
