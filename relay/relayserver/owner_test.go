package relayserver

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/relay"
	"github.com/agenthost/agenthost/trust"
)

// TestClientIP: behind proxies the client is the right-most
// X-Forwarded-For hop that is not a trusted proxy; entries left of it are
// the client's own words. On the old code --trust-proxy took the first
// (left-most) entry, which the client writes.
func TestClientIP(t *testing.T) {
	cases := []struct {
		name    string
		remote  string
		xff     []string
		trust   bool
		proxies []string
		want    string
	}{
		{"no proxy trusted", "10.0.0.1:5000", []string{"6.6.6.6"}, false, nil, "10.0.0.1"},
		{"one proxy, client forges a hop", "127.0.0.1:5000", []string{"6.6.6.6, 203.0.113.7"}, true, nil, "203.0.113.7"},
		{"one proxy, plain", "127.0.0.1:5000", []string{"203.0.113.7"}, true, nil, "203.0.113.7"},
		{"two trusted proxies", "10.0.0.2:5000", []string{"6.6.6.6, 203.0.113.7, 10.0.0.3"}, true, []string{"10.0.0.0/8"}, "203.0.113.7"},
		{"several headers", "10.0.0.2:5000", []string{"6.6.6.6", "203.0.113.7, 10.0.0.3"}, true, []string{"10.0.0.0/8"}, "203.0.113.7"},
		{"peer not a trusted proxy", "198.51.100.1:5000", []string{"203.0.113.7"}, true, []string{"10.0.0.0/8"}, "198.51.100.1"},
		{"all hops trusted", "10.0.0.2:5000", []string{"10.0.0.9"}, true, []string{"10.0.0.0/8"}, "10.0.0.9"},
		{"garbage hop stops the walk", "127.0.0.1:5000", []string{"203.0.113.7, not-an-ip"}, true, nil, "127.0.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: c.remote, Header: http.Header{}}
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			p, err := newProxies(c.trust, c.proxies)
			if err != nil {
				t.Fatal(err)
			}
			if got := clientIP(r, p); got != c.want {
				t.Fatalf("client IP %q, want %q", got, c.want)
			}
		})
	}
	if _, err := newProxies(true, []string{"not a cidr"}); err == nil {
		t.Fatal("bad proxy accepted")
	}
}

// signedConnect is a CONNECT signed by id for agent to, naming session.
func signedConnect(t testing.TB, id *trust.Identity, to, session string) map[string]any {
	t.Helper()
	env, err := trust.Sign(id, trust.NewPayload(to, time.Now(), map[string]any{"session_id": session, "n": time.Now().UnixNano()}))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"type": "CONNECT", "to": to, "session_id": session, "payload": env.Payload, "from": env.From, "signature": env.Signature}
}

// TestRelaySessionOwner: a live relay session is resumed only by the
// signer that opened it; anyone else naming its id is refused and the
// owner keeps its connection. On the old code anyone who named a live
// session id took it over and the owner was disconnected.
func TestRelaySessionOwner(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	agent := identity(t, 1)
	runAnnouncer(t, s.URL(), agent, relay.AnnounceInfo{}, echoHandler)
	alice, mallory := identity(t, 2), identity(t, 3)

	owner := newClient(t, s)
	owner.send(signedConnect(t, alice, agent.Address(), "alice-session-1"))
	if m := owner.read(); m["session_id"] != "alice-session-1" {
		t.Fatalf("owner: %v", m)
	}
	for name, frame := range map[string]map[string]any{
		"unsigned":       {"type": "CONNECT", "to": agent.Address(), "session_id": "alice-session-1"},
		"another signer": signedConnect(t, mallory, agent.Address(), "alice-session-1"),
		"a replay":       signedConnect(t, alice, agent.Address(), "alice-session-1"),
	} {
		thief := newClient(t, s)
		if name == "a replay" {
			thief.send(frame)
			thief.read() // the first use is alice's own resume: allowed
			owner = thief
			thief = newClient(t, s)
		}
		thief.send(frame)
		m, _ := tryReadMap(thief.c, 5*time.Second)
		if m["type"] != relay.TypeError {
			t.Fatalf("%s took the session over: %v", name, m)
		}
	}
	// The owner is still connected.
	owner.send(map[string]any{"type": "PING", "x": 1})
	if m := owner.read(); m["x"] != float64(1) {
		t.Fatalf("owner lost its session: %v", m)
	}
	_ = context.Background
	_ = strings.Contains
}

// TestRelayHTTPTimeouts: idle keep-alive connections and stalled requests
// are closed, while WebSocket sessions outlive the read timeout. On the old
// code a stalled request body held its connection (no read timeout).
func TestRelayHTTPTimeouts(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, func(c *Config) {
		c.HTTPReadHeaderTimeout, c.HTTPReadTimeout, c.HTTPIdleTimeout = 200*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	})
	addr := strings.TrimPrefix(httpURL(s), "http://")
	closed := func(req string) bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(req))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				ne, ok := err.(net.Error)
				return !(ok && ne.Timeout())
			}
		}
	}
	if !closed("GET /health HTTP/1.1\r\nHost: x\r\n\r\n") {
		t.Error("idle keep-alive connection left open")
	}
	if !closed("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{") {
		t.Error("stalled request left open")
	}
	// A relayed session outlives the read timeout: an echo after it.
	agent := identity(t, 1)
	runAnnouncer(t, s.URL(), agent, relay.AnnounceInfo{}, echoHandler)
	cl := newClient(t, s)
	cl.send(map[string]any{"type": "PING", "to": agent.Address(), "n": 1})
	cl.read()
	timer := time.NewTimer(500 * time.Millisecond)
	<-timer.C // past the read timeout on purpose: the point of the test
	cl.send(map[string]any{"type": "PING", "n": 2})
	if m := cl.read(); m["n"] != float64(2) {
		t.Fatalf("after the read timeout: %v", m)
	}
}
