package relay

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// relaySession is one relayed client session on the agent side: frames
// the relay routed to it arrive on in; frames written go out over the
// shared announce socket with the session id stamped on.
type relaySession struct {
	id   string
	conn *relayConn
	in   chan []byte

	once sync.Once
	done chan struct{} // closed when the session ends
}

var _ FrameConn = (*relaySession)(nil)

func (s *relaySession) ReadFrame(ctx context.Context) ([]byte, error) {
	// Frames that arrived before the session ended are still delivered.
	select {
	case f := <-s.in:
		return f, nil
	default:
	}
	select {
	case f := <-s.in:
		return f, nil
	case <-s.done:
		select {
		case f := <-s.in:
			return f, nil
		default:
		}
		return nil, fmt.Errorf("relay session %s: %w", s.id, io.EOF)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *relaySession) WriteFrame(ctx context.Context, frame []byte) error {
	select {
	case <-s.done:
		return ErrSessionClosed
	default:
	}
	if int64(len(frame)) > s.conn.maxFrame {
		return fmt.Errorf("%d bytes, limit %d: %w", len(frame), s.conn.maxFrame, ErrFrameTooLarge)
	}
	if _, err := ParseHeader(frame); err != nil {
		return err
	}
	stamped, err := WithSessionID(frame, s.id)
	if err != nil {
		return err
	}
	return s.conn.send(ctx, stamped, s.done)
}

// Close ends the session and tells the relay, which closes the client's
// socket with reason.
func (s *relaySession) Close(reason string) error {
	if s.end() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.conn.send(ctx, CloseFrame(s.id, reason), nil)
	}
	return nil
}

// end marks the session over and detaches it from its connection. It
// reports whether this call ended it.
func (s *relaySession) end() bool {
	ended := false
	s.once.Do(func() {
		ended = true
		close(s.done)
		s.conn.detach(s)
	})
	return ended
}

// WSFrameConn is a FrameConn over a whole WebSocket: the direct /ws
// counterpart of a relayed session, so a handler written for one serves
// the other (host's /ws endpoint serves its sockets through it). Reads take
// text frames up to the connection's read limit (SetReadLimit). As with any
// coder/websocket connection, a context that ends during a read or write
// closes the socket.
type WSFrameConn struct {
	Conn *websocket.Conn
}

var _ FrameConn = (*WSFrameConn)(nil)

// ReadFrame returns the next text frame. Binary frames are refused.
func (c *WSFrameConn) ReadFrame(ctx context.Context) ([]byte, error) {
	typ, b, err := c.Conn.Read(ctx)
	if err != nil {
		if websocket.CloseStatus(err) != -1 {
			return nil, fmt.Errorf("%w: %w", io.EOF, err)
		}
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, fmt.Errorf("%w: binary frame", ErrMalformedFrame)
	}
	return b, nil
}

// SetReadLimit bounds the size of the frames read next, so a server can
// take small frames until it knows the caller and larger ones after.
func (c *WSFrameConn) SetReadLimit(n int64) { c.Conn.SetReadLimit(n) }

// WriteFrame writes one text frame.
func (c *WSFrameConn) WriteFrame(ctx context.Context, frame []byte) error {
	return c.Conn.Write(ctx, websocket.MessageText, frame)
}

// Close closes the socket normally with reason.
func (c *WSFrameConn) Close(reason string) error {
	return c.Conn.Close(websocket.StatusNormalClosure, CloseReason(reason))
}
