package host

import (
	"fmt"
	"io"
	"net"
	"strings"
	"unicode/utf8"

	"github.com/agenthost/agenthost/internal/version"
)

// PrintBanner writes the seed's box: the agent, its address, endpoints, the
// interactive page and the relay.
func (s *Server) PrintBanner(w io.Writer, addr net.Addr) {
	rt := s.current()
	port := rt.cfg.Port
	if ta, ok := addr.(*net.TCPAddr); ok {
		port = ta.Port
	}
	base := fmt.Sprintf("http://localhost:%d", port)
	relay := s.relayLine()
	lines := []string{
		fmt.Sprintf("Agent '%s' is now hosted", rt.name),
		"",
		"",
		"Address: " + s.id.Address(),
		"Version: agenthost " + version.String(),
		"",
		"HTTP Endpoints:",
		"  POST " + base + "/input",
		"  GET  " + base + "/sessions/{session_id}",
		"  GET  " + base + "/health",
		"  GET  " + base + "/info",
		"  WS   ws://localhost" + base[len("http://localhost"):] + "/ws",
		"",
		"Interactive UI:",
		"  " + base + "/docs",
		"",
		"P2P Relay:",
		"  " + relay,
		"",
	}
	width := 57
	for _, l := range lines {
		width = max(width, utf8.RuneCountInString(l)+2)
	}
	bar := strings.Repeat("─", width)
	fmt.Fprintf(w, "╭%s╮\n", bar)
	for i, l := range lines {
		if i == 1 {
			fmt.Fprintf(w, "├%s┤\n", bar)
			continue
		}
		fmt.Fprintf(w, "│ %s%s│\n", l, strings.Repeat(" ", width-1-utf8.RuneCountInString(l)))
	}
	fmt.Fprintf(w, "╰%s╯\n\n", bar)
}
