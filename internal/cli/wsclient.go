package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/coder/websocket"
)

// agentConn is a small client of a host's /ws: enough for `agenthost call`.
// The client package will replace it with signed, relay-aware connections.
type agentConn struct {
	c *websocket.Conn
}

// wsURL turns what a user types (host:port, http(s)://…, ws(s)://…) into
// the host's WebSocket URL.
func wsURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("agent URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("agent URL %q: want http(s) or ws(s)", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws"
	}
	return u.String(), nil
}

func dialAgent(ctx context.Context, raw string) (*agentConn, error) {
	u, err := wsURL(raw)
	if err != nil {
		return nil, err
	}
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", u, err)
	}
	c.SetReadLimit(64 << 20)
	return &agentConn{c: c}, nil
}

func (a *agentConn) send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return a.c.Write(ctx, websocket.MessageText, b)
}

// frame is any server frame; fields are read by type.
type frame map[string]any

func (f frame) str(k string) string {
	s, _ := f[k].(string)
	return s
}

func (a *agentConn) read(ctx context.Context) (frame, error) {
	_, b, err := a.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("bad frame from the agent: %w", err)
	}
	return f, nil
}

func (a *agentConn) close() { a.c.Close(websocket.StatusNormalClosure, "") }
