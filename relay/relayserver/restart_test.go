package relayserver

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/relay"
)

// TestRelayRestart: a client mid-session when the relay stops gets a clear
// error; the agent reconnects to the relay's successor on the same address
// and re-announces within a few seconds; new clients then get through.
func TestRelayRestart(t *testing.T) {
	checkGoroutines(t)
	first, err := New(Config{Addr: "127.0.0.1:0", SweepInterval: 20 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	addr := first.Addr().String()
	id := identity(t, 1)
	var statusCalls atomic.Int32
	a := runAnnouncer(t, first.URL()+"/ws/announce", id, relay.AnnounceInfo{Summary: "survivor"}, echoHandler,
		relay.WithBackoff([]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}, 0.2, time.Hour),
		relay.WithStatusFunc(func(relay.Status) { statusCalls.Add(1) }))

	cl := newClient(t, first)
	cl.send(map[string]any{"type": "INPUT", "to": id.Address(), "prompt": "mid-run"})
	cl.read()

	told := make(chan map[string]any, 1)
	closed := make(chan websocket.StatusCode, 1)
	go func() { // the client is waiting for its answer when the relay stops
		m, _ := tryReadMap(cl.c, 10*time.Second)
		told <- m
		for {
			if _, _, err := cl.c.Read(context.Background()); err != nil {
				closed <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t0 := time.Now()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	if m := <-told; m["type"] != relay.TypeError || !strings.Contains(m["message"].(string), "shutting down") {
		t.Errorf("client mid-run told %v", m)
	}
	if code := <-closed; code != websocket.StatusGoingAway {
		t.Errorf("client close %v", code)
	}
	waitFor(t, "announcer notices", func() bool { return !a.Status().Announced })

	time.Sleep(300 * time.Millisecond) // the relay is down for a while
	restarted := startRelay(t, func(c *Config) { c.Addr = addr })
	began := time.Now()
	// Online at the relay, and the announcer has read ANNOUNCE_OK (which
	// the relay sends just after registering it).
	waitFor(t, "re-announced", func() bool {
		info, ok := restarted.reg.lookup(id.Address())
		return ok && info.Online && a.Status().Announced
	})
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("re-announce took %s", d)
	}
	if st := a.Status(); st.Connects < 2 || !st.Announced || st.LastError != nil || statusCalls.Load() < 4 {
		t.Errorf("status %+v after %d changes", st, statusCalls.Load())
	}
	cl2 := newClient(t, restarted)
	cl2.send(map[string]any{"type": "INPUT", "to": id.Address(), "prompt": "after restart"})
	if m := cl2.read(); m["prompt"] != "after restart" {
		t.Errorf("after restart: %v", m)
	}
}
