package relayserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/relay"
)

func TestManyClientsOneAgent(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, func(c *Config) { c.ConnBurstPerIP = 100 })
	id := identity(t, 1)
	runAnnouncer(t, s.URL(), id, relay.AnnounceInfo{}, echoHandler)

	const clients, frames = 40, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, s.URL()+"/ws/input", nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.CloseNow()
			var sid any
			for j := range frames {
				msg := map[string]any{"type": "INPUT", "to": id.Address(), "prompt": fmt.Sprintf("c%d-f%d", i, j)}
				b, _ := json.Marshal(msg)
				if err := c.Write(ctx, websocket.MessageText, b); err != nil {
					errs <- err
					return
				}
				_, got, err := c.Read(ctx)
				if err != nil {
					errs <- err
					return
				}
				var m map[string]any
				json.Unmarshal(got, &m)
				if m["type"] != "ECHO" || m["prompt"] != msg["prompt"] {
					errs <- fmt.Errorf("client %d got %s", i, got)
					return
				}
				if sid == nil {
					sid = m["session_id"]
				} else if m["session_id"] != sid {
					errs <- fmt.Errorf("client %d: session id changed %v → %v", i, sid, m["session_id"])
					return
				}
			}
			c.Close(websocket.StatusNormalClosure, "")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := metric(t, s, `relay_frames_forwarded_total{direction="to_agent"}`); n != clients*frames {
		t.Errorf("forwarded to agent %v, want %d", n, clients*frames)
	}
	testutil.Eventually(t, 5*time.Second, "sessions closed", func() bool { return s.sessions.Load() == 0 })
}

// TestSessionIDs: a client naming its session keeps that id end to end; one
// that names none gets a fresh one; a second connection naming a live id
// takes the session over, and the agent sees the old one end first.
func TestSessionIDs(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	id := identity(t, 1)
	type event struct{ kind, id string }
	events := make(chan event, 16)
	runAnnouncer(t, s.URL(), id, relay.AnnounceInfo{}, func(ctx context.Context, c relay.FrameConn, sid string) {
		events <- event{"start", sid}
		echoHandler(ctx, c, sid)
		events <- event{"end", sid}
	})
	next := func() event {
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no handler event")
			return event{}
		}
	}

	owner := identity(t, 9)
	a := newClient(t, s)
	a.send(signedConnect(t, owner, id.Address(), "my-session-1"))
	if m := a.read(); m["session_id"] != "my-session-1" {
		t.Errorf("named session: %v", m)
	}
	if e := next(); e != (event{"start", "my-session-1"}) {
		t.Errorf("event %v", e)
	}
	b := newClient(t, s)
	b.send(map[string]any{"type": "INPUT", "to": id.Address(), "session": map[string]any{"session_id": "from-object"}})
	if m := b.read(); m["session_id"] != "from-object" {
		t.Errorf("session object id: %v", m)
	}
	next()
	c := newClient(t, s)
	c.send(map[string]any{"type": "INPUT", "to": id.Address(), "session_id": "bad id with spaces"})
	m := c.read()
	if sid, _ := m["session_id"].(string); len(sid) != 32 {
		t.Errorf("fresh id: %v", m)
	}
	next()

	// Take-over of my-session-1 by the identity that opened it.
	a2 := newClient(t, s)
	second := signedConnect(t, owner, id.Address(), "my-session-1")
	second["n"] = 2
	a2.send(second)
	if m := a.read(); m["type"] != relay.TypeError || !strings.Contains(m["message"].(string), "taken over") {
		t.Errorf("old connection told %v", m)
	}
	expectClosed(t, a.c)
	// The old session ended (its handler saw EOF) and a new one started;
	// the two handlers run concurrently, so their events may come in
	// either order.
	got := map[event]bool{next(): true, next(): true}
	if !got[event{"end", "my-session-1"}] || !got[event{"start", "my-session-1"}] {
		t.Errorf("events %v, want the old session's end and a new start", got)
	}
	if m := a2.read(); m["n"] != float64(2) {
		t.Errorf("new connection got %v", m)
	}
}

// TestSessionEnds: either side leaving is seen by the other at once.
func TestSessionEnds(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	id := identity(t, 1)
	ended := make(chan error, 4)
	read := make(chan struct{}, 4) // a frame reached the handler
	runAnnouncer(t, s.URL(), id, relay.AnnounceInfo{}, func(ctx context.Context, c relay.FrameConn, sid string) {
		for {
			f, err := c.ReadFrame(ctx)
			if err != nil {
				ended <- err
				return
			}
			select {
			case read <- struct{}{}:
			default:
			}
			if bytes.Contains(f, []byte(`"BYE"`)) {
				c.WriteFrame(ctx, []byte(`{"type":"OUTPUT","result":"bye"}`))
				c.Close("done for today")
				if err := c.WriteFrame(ctx, []byte(`{"type":"late"}`)); !errors.Is(err, relay.ErrSessionClosed) {
					ended <- fmt.Errorf("write after close: %v", err)
				}
				return
			}
		}
	})

	// Client leaves: the handler's read ends with EOF.
	cl := newClient(t, s)
	cl.send(map[string]any{"type": "INPUT", "to": id.Address(), "prompt": "x"})
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		t.Fatal("the INPUT never reached the handler")
	}
	cl.c.Close(websocket.StatusNormalClosure, "")
	select {
	case err := <-ended:
		if !errors.Is(err, io.EOF) {
			t.Errorf("handler read error %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler not told the client left")
	}

	// Agent ends the session: the client gets its last frame, then a
	// normal close.
	cl2 := newClient(t, s)
	cl2.send(map[string]any{"type": "INPUT", "to": id.Address(), "prompt": "BYE"})
	if m := cl2.read(); m["result"] != "bye" {
		t.Errorf("got %v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := cl2.c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "done for today" {
		t.Errorf("close %v", err)
	}
	select {
	case err := <-ended:
		t.Error(err)
	default:
	}
}

// TestAgentGoneMidSession: the client of an agent that disappears gets a
// clear ERROR and a close, not a hang.
func TestAgentGoneMidSession(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	agent := newRawAgent(t, s, identity(t, 1))
	agent.announce(time.Now(), relay.AnnounceInfo{})
	cl := newClient(t, s)
	cl.send(map[string]any{"type": "INPUT", "to": agent.id.Address(), "prompt": "long job"})
	if m := agent.read(); m["prompt"] != "long job" {
		t.Fatalf("agent got %v", m)
	}
	agent.c.CloseNow() // the agent's process dies
	m := cl.read()
	if m["type"] != relay.TypeError || !strings.Contains(m["message"].(string), "disconnected") || m["error"] != m["message"] {
		t.Errorf("client told %v", m)
	}
	if code := expectClosed(t, cl.c); code != websocket.StatusGoingAway {
		t.Errorf("close %v", code)
	}
}

func TestOfflineAndBadFirstFrame(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	cases := []struct {
		frame any
		want  string
	}{
		{map[string]any{"type": "INPUT", "to": identity(t, 9).Address(), "prompt": "hi"}, "is offline"},
		{map[string]any{"type": "INPUT", "prompt": "hi"}, `"to"`},
		{[]byte(`not json`), "JSON object"},
	}
	for _, c := range cases {
		cl := newClient(t, s)
		cl.send(c.frame)
		m := cl.read()
		if m["type"] != relay.TypeError || !strings.Contains(m["message"].(string), c.want) {
			t.Errorf("%v: %v", c.frame, m)
		}
		expectClosed(t, cl.c)
	}
	if metric(t, s, `relay_connections_rejected_total{reason="agent_offline"}`) != 1 {
		t.Error("offline not counted")
	}
}

// TestSlowClient: a client that stops reading is disconnected and counted,
// while another client of the same agent carries on at full speed.
func TestSlowClient(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, func(c *Config) {
		c.SendQueueFrames = 16
		c.SendQueueBytes = 256 << 10
		c.WriteTimeout = 2 * time.Second
		c.AgentFrameRate = -1
	})
	id := identity(t, 1)
	big := `{"type":"STREAM","chunk":"` + strings.Repeat("x", 64<<10) + `"}`
	runAnnouncer(t, s.URL(), id, relay.AnnounceInfo{}, func(ctx context.Context, c relay.FrameConn, sid string) {
		for {
			f, err := c.ReadFrame(ctx)
			if err != nil {
				return
			}
			if bytes.Contains(f, []byte("FLOOD")) {
				for range 2000 { // 128 MiB: more than any socket buffer holds
					if c.WriteFrame(ctx, []byte(big)) != nil {
						return
					}
				}
				continue
			}
			c.WriteFrame(ctx, f)
		}
	})
	slow := newClient(t, s)
	slow.send(map[string]any{"type": "INPUT", "to": id.Address(), "prompt": "FLOOD"})

	fast := newClient(t, s)
	start := time.Now()
	for i := range 50 {
		fast.send(map[string]any{"type": "INPUT", "to": id.Address(), "n": i})
		if m := fast.read(); m["n"] != float64(i) {
			t.Fatalf("fast client got %v", m)
		}
	}
	// Generous: the agent's one socket still carries the flood until the
	// relay drops the slow client (WriteTimeout), and -race on a loaded
	// 2-core machine moves 64 KiB frames slowly. A stalled fast client
	// would take the whole flood, or forever.
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("fast client took %s for 50 round trips", d)
	}
	testutil.Eventually(t, 5*time.Second, "slow client dropped", func() bool {
		return metric(t, s, `relay_slow_consumer_disconnects_total{kind="client"}`) == 1
	})
	if m := s.reg.online(); m != 1 {
		t.Errorf("agent dropped with the slow client: online %d", m)
	}
}

// TestSlowAgent: frames for an agent that stops reading fill its queue;
// the session that overflows it is closed with a clear error.
func TestSlowAgent(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, func(c *Config) {
		c.SendQueueFrames = 4
		c.SendQueueBytes = 1 << 20
		c.WriteTimeout = 10 * time.Second
		c.ClientFrameRate = -1
	})
	agent := newRawAgent(t, s, identity(t, 1)) // announces, then never reads again
	agent.announce(time.Now(), relay.AnnounceInfo{})
	cl := newClient(t, s)
	frames := make(chan map[string]any, 1)
	go func() {
		m, err := tryReadMap(cl.c, 20*time.Second)
		if err == nil {
			frames <- m
		}
		close(frames)
	}()
	b, _ := json.Marshal(map[string]any{"type": "INPUT", "to": agent.id.Address(), "prompt": strings.Repeat("y", 256<<10)})
	var m map[string]any
	for i := 0; i < 2000; i++ {
		select {
		case m = <-frames:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := cl.c.Write(ctx, websocket.MessageText, b)
			cancel()
			if err == nil {
				continue
			}
			m = <-frames
		}
		break
	}
	if m["type"] != relay.TypeError || !strings.Contains(m["message"].(string), "not keeping up") {
		t.Errorf("client told %v", m)
	}
	if metric(t, s, `relay_frames_dropped_total{reason="agent_queue_full"}`) < 1 {
		t.Error("drop not counted")
	}
}

func TestFrameTooLarge(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, func(c *Config) { c.MaxFrameSize = 256 << 10 })
	id := identity(t, 1)
	tooBig := make(chan error, 1)
	runAnnouncer(t, s.URL(), id, relay.AnnounceInfo{}, func(ctx context.Context, c relay.FrameConn, sid string) {
		c.ReadFrame(ctx)
		tooBig <- c.WriteFrame(ctx, []byte(`{"chunk":"`+strings.Repeat("z", 300<<10)+`"}`))
		c.WriteFrame(ctx, []byte(`{"type":"OUTPUT","result":"ok"}`))
		echoHandler(ctx, c, sid)
	}, relay.WithMaxFrameSize(256<<10))

	cl := newClient(t, s)
	cl.send(map[string]any{"type": "INPUT", "to": id.Address()})
	if err := <-tooBig; !errors.Is(err, relay.ErrFrameTooLarge) {
		t.Errorf("agent write of an oversized frame: %v", err)
	}
	if m := cl.read(); m["result"] != "ok" {
		t.Errorf("after the refused frame: %v", m)
	}
	cl.send(map[string]any{"type": "INPUT", "prompt": strings.Repeat("a", 300<<10)})
	if code := expectClosed(t, cl.c); code != websocket.StatusMessageTooBig {
		t.Errorf("close %v, want 1009", code)
	}
	testutil.Eventually(t, 5*time.Second, "counted", func() bool { return metric(t, s, `relay_frames_too_large_total{kind="client"}`) == 1 })
	if s.reg.online() != 1 {
		t.Error("the agent suffered for the client's frame")
	}
}

func TestRateLimits(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, func(c *Config) {
		c.ClientFrameRate, c.ClientFrameBurst = 1, 5
		c.ConnRatePerIP, c.ConnBurstPerIP = 0.001, 8
	})
	id := identity(t, 1)
	runAnnouncer(t, s.URL(), id, relay.AnnounceInfo{}, echoHandler) // connection 1
	cl := newClient(t, s)                                           // 2
	for i := range 12 {
		cl.send(map[string]any{"type": "INPUT", "to": id.Address(), "n": i})
	}
	echoes, limited := 0, 0
	for range 12 {
		m := cl.read()
		switch {
		case m["type"] == "ECHO":
			echoes++
		case m["type"] == relay.TypeError && strings.Contains(m["message"].(string), "rate limited"):
			limited++
		}
	}
	if echoes < 5 || echoes > 7 || echoes+limited != 12 {
		t.Errorf("echoes %d, rate-limited %d", echoes, limited)
	}
	if metric(t, s, `relay_rate_limited_total{kind="client_frame"}`) != float64(limited) {
		t.Error("rate limiting not counted")
	}
	// New connections per IP: the burst is 8, two are used.
	refused := 0
	for range 8 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, s.URL()+"/ws/input", nil)
		cancel()
		if err != nil {
			if resp == nil || resp.StatusCode != 429 {
				t.Fatalf("dial: %v %v", err, resp)
			}
			refused++
			continue
		}
		c.CloseNow()
	}
	if refused != 2 {
		t.Errorf("refused %d connections, want 2", refused)
	}
}

func TestIdleClientClosed(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	id := identity(t, 1)
	ended := make(chan struct{})
	runAnnouncer(t, s.URL(), id, relay.AnnounceInfo{}, func(ctx context.Context, c relay.FrameConn, sid string) {
		echoHandler(ctx, c, sid)
		close(ended)
	})
	cl := newClient(t, s)
	cl.send(map[string]any{"type": "INPUT", "to": id.Address()})
	cl.read()
	m := cl.read()
	if m["type"] != relay.TypeError || !strings.Contains(m["message"].(string), "idle") {
		t.Errorf("idle client told %v", m)
	}
	if code := expectClosed(t, cl.c); code != closeIdle {
		t.Errorf("close %v", code)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("agent not told the idle session ended")
	}
}

// TestReferenceWire pins the wire format against the reference agent
// (connectonion/network/relay.py) and Python client (connect.py): client
// frames reach the agent unchanged but for "session_id"; the agent's
// replies carry it back and reach the client byte for byte; a leaving
// client shows up as {"type":"close","session_id":…}.
func TestReferenceWire(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	agent := newRawAgent(t, s, identity(t, 1))
	agent.announce(time.Now(), relay.AnnounceInfo{Summary: "reference agent"})

	cl := newClient(t, s)
	input := `{"type": "INPUT", "input_id": "7d4c", "prompt": "Translate hello", "timestamp": 1760000000, "to": "` +
		agent.id.Address() + `", "images": ["data:image/png;base64,iVBORw0KGgo="]}`
	cl.send([]byte(input))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, got, err := agent.c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var in map[string]any
	json.Unmarshal(got, &in)
	sid, _ := in["session_id"].(string)
	if sid == "" {
		t.Fatalf("no session_id in %s", got)
	}
	withoutSID := map[string]any{}
	json.Unmarshal([]byte(input), &withoutSID)
	delete(in, "session_id")
	if a, b := fmt.Sprint(in), fmt.Sprint(withoutSID); a != b {
		t.Errorf("agent got %s, want %s", a, b)
	}

	reply := `{"type": "OUTPUT", "input_id": "7d4c", "result": "Hola", "session_id": "` + sid + `", "session": {"session_id": "host-own"}}`
	agent.send([]byte(reply))
	_, out, err := cl.c.Read(ctx)
	if err != nil || string(out) != reply {
		t.Errorf("client got %s (%v), want %s", out, err, reply)
	}
	// Frames for other sessions, and frames without one, go nowhere.
	agent.send([]byte(`{"type": "OUTPUT", "session_id": "someone-else"}`))
	agent.send([]byte(`{"type": "PING"}`))
	cl.c.Close(websocket.StatusNormalClosure, "")
	if m := agent.read(); m["type"] != relay.TypeClose || m["session_id"] != sid {
		t.Errorf("agent told %v", m)
	}
	testutil.Eventually(t, 5*time.Second, "drops counted", func() bool {
		return metric(t, s, `relay_frames_dropped_total{reason="unknown_session"}`) == 1 &&
			metric(t, s, `relay_frames_dropped_total{reason="no_session_id"}`) == 1
	})
}

// TestAnnouncerRefused: an agent whose clock is far off is refused, says
// why in its status, and keeps retrying with backoff.
func TestAnnouncerRefused(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	a, err := relay.NewAnnouncer(s.URL(), identity(t, 1), relay.AnnounceInfo{}, echoHandler,
		relay.WithLogger(quietLogger()),
		relay.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }),
		relay.WithBackoff([]time.Duration{30 * time.Millisecond}, 0, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	testutil.Eventually(t, 5*time.Second, "refusals", func() bool { return a.Status().Connects >= 3 })
	cancel()
	<-done
	st := a.Status()
	if st.Announced || !errors.Is(st.LastError, relay.ErrAnnounceRefused) || !strings.Contains(st.LastError.Error(), "stale") {
		t.Errorf("status %+v", st)
	}
}

// TestFastSenderKeepsReader: a sender that writes as fast as it can into a
// reader that reads as fast as it can must not get the reader dropped. The
// relay's queue toward the slower side fills; it waits for room while that
// side's writer makes progress instead of dropping the client (agent →
// client) or ending the session (client → agent). Tiny queues make the
// overflow certain: before this, both directions lost the session within
// a few frames (BenchmarkForward failed with "failed to read frame header:
// EOF" and hung).
func TestFastSenderKeepsReader(t *testing.T) {
	const n = 3000
	chunk := []byte(`{"type":"STREAM","chunk":"` + strings.Repeat("x", 200) + `"}`)
	for _, dir := range []string{"agent_to_client", "client_to_agent"} {
		t.Run(dir, func(t *testing.T) {
			checkGoroutines(t)
			s := startRelay(t, func(c *Config) {
				c.SendQueueFrames = 2
				c.AgentFrameRate, c.ClientFrameRate = -1, -1
			})
			id := identity(t, 1)
			got := make(chan int, 1)
			runAnnouncer(t, s.URL(), id, relay.AnnounceInfo{}, func(ctx context.Context, c relay.FrameConn, _ string) {
				if _, err := c.ReadFrame(ctx); err != nil { // the INPUT that starts it
					return
				}
				if dir == "agent_to_client" {
					for range n {
						if c.WriteFrame(ctx, chunk) != nil {
							return
						}
					}
					c.ReadFrame(ctx)
					return
				}
				k := 0
				for k < n {
					if _, err := c.ReadFrame(ctx); err != nil {
						break
					}
					k++
				}
				got <- k
				c.WriteFrame(ctx, []byte(`{"type":"DONE"}`))
				c.ReadFrame(ctx)
			})
			cl := newClient(t, s)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cl.send(map[string]any{"type": "INPUT", "to": id.Address(), "prompt": "go"})
			if dir == "agent_to_client" {
				for i := range n {
					if _, _, err := cl.c.Read(ctx); err != nil {
						t.Fatalf("client dropped after %d of %d frames: %v", i, n, err)
					}
				}
			} else {
				frame := []byte(`{"type":"INPUT","to":"` + id.Address() + `","prompt":"` + strings.Repeat("y", 200) + `"}`)
				for i := range n {
					if err := cl.c.Write(ctx, websocket.MessageText, frame); err != nil {
						t.Fatalf("write %d of %d: %v", i, n, err)
					}
				}
				if m := cl.read(); m["type"] != "DONE" {
					t.Fatalf("session ended before the agent read every frame: %v", m)
				}
				if k := <-got; k != n {
					t.Fatalf("agent read %d of %d frames", k, n)
				}
			}
			if m := metric(t, s, `relay_slow_consumer_disconnects_total{kind="client"}`); m != 0 {
				t.Errorf("client counted as slow %v times", m)
			}
			if m := metric(t, s, `relay_frames_dropped_total{reason="agent_queue_full"}`); m != 0 {
				t.Errorf("%v frames dropped for a full agent queue", m)
			}
		})
	}
}
