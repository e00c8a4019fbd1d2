package relay

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// TestWSFrameConn drives the one WebSocket adapter (host's /ws uses it)
// over a real socket: text frames pass, a binary frame is malformed, a
// frame over the read limit ends the read, the peer's close reads as
// io.EOF, and Close sends a reason cut to a valid 120 bytes.
func TestWSFrameConn(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes: a byte cut would split a rune
	cases := []struct {
		name   string
		client func(ctx context.Context, c *websocket.Conn) error
		server func(ctx context.Context, fc *WSFrameConn) error
	}{
		{"text frames round trip", func(ctx context.Context, c *websocket.Conn) error {
			if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"PING"}`)); err != nil {
				return err
			}
			_, b, err := c.Read(ctx)
			if err == nil && string(b) != `{"type":"PONG"}` {
				err = errors.New("client read " + string(b))
			}
			return err
		}, func(ctx context.Context, fc *WSFrameConn) error {
			b, err := fc.ReadFrame(ctx)
			if err != nil {
				return err
			}
			if string(b) != `{"type":"PING"}` {
				return errors.New("server read " + string(b))
			}
			return fc.WriteFrame(ctx, []byte(`{"type":"PONG"}`))
		}},
		{"binary frame is malformed", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, []byte{1, 2})
		}, func(ctx context.Context, fc *WSFrameConn) error {
			if _, err := fc.ReadFrame(ctx); !errors.Is(err, ErrMalformedFrame) {
				return errors.New("want ErrMalformedFrame, got " + errString(err))
			}
			return nil
		}},
		{"read limit", func(ctx context.Context, c *websocket.Conn) error {
			_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"`+strings.Repeat("x", 64)+`"}`))
			return nil
		}, func(ctx context.Context, fc *WSFrameConn) error {
			fc.SetReadLimit(16)
			if _, err := fc.ReadFrame(ctx); err == nil {
				return errors.New("a frame over the read limit was read")
			}
			return nil
		}},
		{"peer close is EOF", func(ctx context.Context, c *websocket.Conn) error {
			return c.Close(websocket.StatusNormalClosure, "bye")
		}, func(ctx context.Context, fc *WSFrameConn) error {
			if _, err := fc.ReadFrame(ctx); !errors.Is(err, io.EOF) {
				return errors.New("want io.EOF, got " + errString(err))
			}
			return nil
		}},
		{"close reason cut to valid 120 bytes", func(ctx context.Context, c *websocket.Conn) error {
			_, _, err := c.Read(ctx)
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				return errors.New("want a close, got " + errString(err))
			}
			if len(ce.Reason) > 120 || !utf8.ValidString(ce.Reason) || !strings.HasPrefix(long, ce.Reason) {
				return errors.New("close reason " + ce.Reason)
			}
			return nil
		}, func(ctx context.Context, fc *WSFrameConn) error {
			return fc.Close(long)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			serverErr := make(chan error, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := websocket.Accept(w, r, nil)
				if err != nil {
					serverErr <- err
					return
				}
				defer c.CloseNow()
				serverErr <- tc.server(ctx, &WSFrameConn{Conn: c})
			}))
			defer srv.Close()
			c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if err := tc.client(ctx, c); err != nil {
				t.Errorf("client: %v", err)
			}
			if err := <-serverErr; err != nil {
				t.Errorf("server: %v", err)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}
