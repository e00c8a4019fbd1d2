// Package relay lets agents behind NAT be reached and discovered. It holds
// the relay wire protocol (frame types, the ANNOUNCE message and its
// signature, size limits), the agent-side client that keeps an agent
// announced on a relay and serves the client sessions the relay forwards
// (Announcer), and the small frame-connection seam (FrameConn,
// SessionHandler) through which a host runs its WebSocket protocol over a
// relayed session exactly as it does over a direct /ws socket.
//
// The relay server lives in relay/relayserver; `agenthost relay` runs it.
//
// # Wire protocol
//
// Every frame is one WebSocket text message holding a JSON object with a
// "type".
//
// An agent keeps one WebSocket open to {relay}/ws/announce. Its first frame
// is a signed ANNOUNCE; the relay answers ANNOUNCE_OK or ERROR {error}. The
// agent re-announces, freshly signed, at least every 60 s.
//
// A client opens {relay}/ws/input and speaks the host's /ws protocol, adding
// "to": <agent address> to its first frame. The relay gives each client
// connection a relay session id and forwards the client's frames over the
// agent's announce socket with a top-level "session_id" set to that id; the
// agent's frames for that session carry the same "session_id" back and are
// delivered to the client unchanged. When the client goes, the agent gets
// {"type":"close","session_id":…}; when the agent ends a session it may send
// the same frame (with an optional "reason") to the relay, which then
// closes the client's socket.
// Everything else in a frame passes through untouched.
package relay

import (
	"context"
	"errors"
)

// Frame types the relay itself produces or reacts to. All other types are
// the host protocol's and pass through the relay untouched.
const (
	// TypeAnnounce registers (or refreshes) an agent on the relay.
	TypeAnnounce = "ANNOUNCE"
	// TypeAnnounceOK confirms an accepted ANNOUNCE.
	TypeAnnounceOK = "ANNOUNCE_OK"
	// TypeError reports a failure; the relay sets both "error" (what the
	// reference agent reads) and "message" (what clients read).
	TypeError = "ERROR"
	// TypeClose ends one relayed session. Lower case, as the reference
	// agent-side client expects it.
	TypeClose = "close"
)

// Limits shared by the relay and its clients.
const (
	// DefaultMaxFrameSize bounds one forwarded frame. Images travel as data
	// URLs inside frames, so it is generous.
	DefaultMaxFrameSize = 16 << 20
	// MaxAnnounceSize bounds one ANNOUNCE frame.
	MaxAnnounceSize = 64 << 10
	// MaxSummaryChars is the longest summary the relay accepts, in
	// characters (the reference relay's limit).
	MaxSummaryChars = 1000
	// MaxEndpoints bounds the endpoints one agent may announce.
	MaxEndpoints = 16
	// MaxEndpointLen bounds one endpoint URL.
	MaxEndpointLen = 512
	// MaxSessionIDLen bounds a relay session id.
	MaxSessionIDLen = 128
)

// FrameConn is one client connection as the agent sees it: a
// bidirectional stream of JSON text frames. It is the one frame seam of
// the module: a relayed session (served by the Announcer) and a whole
// WebSocket (WSFrameConn, host's direct /ws) both implement it, and
// host.FrameConn is this type, so host.Server.ServeFrames runs the same
// protocol code over either. Frames read from a relayed session carry the
// relay's top-level "session_id"; frames written get it set, so the
// handler need not know the session is relayed.
//
// ReadFrame and WriteFrame may be called from different goroutines; each
// alone is not safe for concurrent use by several goroutines unless stated
// by the implementation.
type FrameConn interface {
	// ReadFrame returns the next frame from the client. It returns an error
	// wrapping io.EOF once the client has gone.
	ReadFrame(ctx context.Context) ([]byte, error)
	// WriteFrame sends one frame to the client.
	WriteFrame(ctx context.Context, frame []byte) error
	// Close ends the session; the client's socket is closed with reason
	// (at most 120 bytes are kept).
	Close(reason string) error
}

// SessionHandler serves one relayed client session. ctx ends when the
// Announcer stops; the end of the client's session shows as ReadFrame
// returning io.EOF, so a handler that keeps work running after its client
// leaves (as a host does for resumable sessions) may do so until ctx ends.
// relaySessionID is the relay's id for the session: the top-level
// "session_id" of every frame of it.
type SessionHandler func(ctx context.Context, conn FrameConn, relaySessionID string)

// Errors returned by this package.
var (
	// ErrSessionClosed is returned by FrameConn writes after the session
	// ended.
	ErrSessionClosed = errors.New("relay: session closed")
	// ErrFrameTooLarge is returned for a frame over the size limit.
	ErrFrameTooLarge = errors.New("relay: frame too large")
	// ErrMalformedFrame is returned for a frame that is not a JSON object.
	ErrMalformedFrame = errors.New("relay: malformed frame")
	// ErrAnnounceRefused is the Announcer's Status.LastError when the relay
	// answered its ANNOUNCE with an ERROR; the relay's reason follows it.
	ErrAnnounceRefused = errors.New("relay refused ANNOUNCE")
)
