package host

import (
	"context"
	"errors"
	"net/http"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/relay"
)

// serveWS upgrades GET /ws and runs the protocol on it. Browser origins
// are checked like HTTP requests' (origins.go) before the upgrade.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) error {
	if !originAllowed(r, s.current().cfg.AllowedOrigins) {
		return errOrigin(r)
	}
	liftReadDeadline(w)
	// The origin was checked above, with the host's own rules.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return nil // Accept has answered the client
	}
	full := maxInputBody(s.current().cfg)
	if s.preAdmit(r, "ws") {
		conn.SetReadLimit(full)
	} else {
		conn.SetReadLimit(PreAdmitLimit) // raised once a frame is admitted
	}
	defer conn.CloseNow()
	err = s.ServeFrames(r.Context(), &relay.WSFrameConn{Conn: conn}, ConnInfo{Transport: "ws", RemoteAddr: r.RemoteAddr, Header: r.Header})
	if err != nil && websocket.CloseStatus(err) == -1 && !errors.Is(err, context.Canceled) {
		s.log.Debug("websocket ended", "remote", r.RemoteAddr, "err", err)
	}
	return nil
}
