package host_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/coder/websocket"
)

// TestBrowserOrigins: pages of other origins can neither call the API nor
// open a WebSocket; the host's own pages, loopback origins, allowed_origins
// and clients that send no Origin can. On the old code every origin got
// "Access-Control-Allow-Origin: *" and its POST /input ran, and any
// origin's WebSocket was accepted.
func TestBrowserOrigins(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithAllowedOrigins("https://app.example.com", "http://*.lan.example:*"))
	own := strings.TrimPrefix(h.URL, "http://")
	cases := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + own, true},
		{"http://localhost:5173", true},
		{"http://127.0.0.1:3000", true},
		{"http://[::1]:8080", true},
		{"https://app.example.com", true},
		{"http://dev.lan.example:8080", true},
		{"https://evil.example", false},
		{"https://app.example.com.evil.example", false},
		{"http://app.example.com", false},
		{"null", false},
	}
	for _, c := range cases {
		t.Run(c.origin, func(t *testing.T) {
			var hdr []string
			if c.origin != "" {
				hdr = []string{"Origin", c.origin}
			}
			code, m, resp := do(t, "POST", h.URL+"/input", map[string]any{"prompt": "hi"}, hdr...)
			acao := resp.Get("Access-Control-Allow-Origin")
			if c.ok {
				wantStatus(t, code, 200, m)
				if c.origin != "" && acao != c.origin {
					t.Fatalf("Access-Control-Allow-Origin %q for %s", acao, c.origin)
				}
			} else {
				wantError(t, code, 403, m, "allowed_origins")
				if acao != "" {
					t.Fatalf("Access-Control-Allow-Origin %q for a refused origin", acao)
				}
			}
			// Preflight.
			code, _, resp = do(t, "OPTIONS", h.URL+"/input", nil, append(hdr, "Access-Control-Request-Method", "POST")...)
			if got := resp.Get("Access-Control-Allow-Origin"); c.ok != (got != "" || c.origin == "") {
				t.Fatalf("preflight: status %d, Access-Control-Allow-Origin %q", code, got)
			}
			// WebSocket.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
			if c.origin != "" {
				opts.HTTPHeader.Set("Origin", c.origin)
			}
			ws, resp2, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/ws", opts)
			if c.ok != (err == nil) {
				t.Fatalf("websocket from %q: %v", c.origin, err)
			}
			if err == nil {
				ws.CloseNow()
			} else if resp2 == nil || resp2.StatusCode != 403 {
				t.Fatalf("websocket refusal: %v", resp2)
			}
		})
	}
}
