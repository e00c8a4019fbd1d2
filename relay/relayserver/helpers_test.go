package relayserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/relay"
	"github.com/agenthost/agenthost/trust"
)

// checkGoroutines fails the test if goroutines it started outlive it. Call
// it first: its cleanup runs last, after the relay and agents have stopped.
func checkGoroutines(t *testing.T) {
	t.Helper()
	http.DefaultClient.CloseIdleConnections()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			http.DefaultClient.CloseIdleConnections()
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startRelay starts a relay on 127.0.0.1:0 with timeouts shortened for
// tests, adjusted by mutate.
func startRelay(t *testing.T, mutate func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Addr:          "127.0.0.1:0",
		SweepInterval: 20 * time.Millisecond,
		Logger:        quietLogger(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func identity(t testing.TB, b byte) *trust.Identity {
	t.Helper()
	id, err := trust.IdentityFromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func dial(t testing.TB, ctx context.Context, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(64 << 20)
	return c
}

// rawAgent is an agent speaking the announce protocol by hand, for tests
// that need exact control of what is signed when.
type rawAgent struct {
	t  testing.TB
	id *trust.Identity
	c  *websocket.Conn
}

func newRawAgent(t testing.TB, s *Server, id *trust.Identity) *rawAgent {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a := &rawAgent{t: t, id: id, c: dial(t, ctx, s.URL()+"/ws/announce")}
	t.Cleanup(func() { a.c.CloseNow() })
	return a
}

func (a *rawAgent) announceFrame(at time.Time, info relay.AnnounceInfo) []byte {
	f, err := relay.BuildAnnounce(a.id, info, "", at)
	if err != nil {
		a.t.Fatal(err)
	}
	return f
}

func (a *rawAgent) send(frame []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.c.Write(ctx, websocket.MessageText, frame); err != nil {
		a.t.Fatalf("agent write: %v", err)
	}
}

// read returns the next frame as a map, or fails.
func (a *rawAgent) read() map[string]any {
	return readMap(a.t, a.c)
}

func readMap(t testing.TB, c *websocket.Conn) map[string]any {
	t.Helper()
	m, err := tryReadMap(c, 5*time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func tryReadMap(c *websocket.Conn, d time.Duration) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("frame %q: %w", b, err)
	}
	return m, nil
}

// expectClosed reads until the socket closes and returns the close status.
func expectClosed(t testing.TB, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("socket not closed within 5 s")
			}
			return websocket.CloseStatus(err)
		}
	}
}

func (a *rawAgent) announce(at time.Time, info relay.AnnounceInfo) {
	a.t.Helper()
	a.send(a.announceFrame(at, info))
	if m := a.read(); m["type"] != relay.TypeAnnounceOK {
		a.t.Fatalf("announce answered %v", m)
	}
}

// echoHandler answers every frame of a relayed session with the same frame
// under type ECHO (and the relay's session id, which WriteFrame stamps).
func echoHandler(ctx context.Context, c relay.FrameConn, id string) {
	for {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(f, &m) != nil {
			continue
		}
		m["type"] = "ECHO"
		out, _ := json.Marshal(m)
		if c.WriteFrame(ctx, out) != nil {
			return
		}
	}
}

// runAnnouncer runs an Announcer for id against s until the test ends and
// waits until the relay accepted it.
func runAnnouncer(t *testing.T, relayURL string, id *trust.Identity, info relay.AnnounceInfo, h relay.SessionHandler, opts ...relay.AnnouncerOption) *relay.Announcer {
	t.Helper()
	opts = append([]relay.AnnouncerOption{
		relay.WithLogger(quietLogger()),
		relay.WithBackoff([]time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}, 0.2, time.Second),
	}, opts...)
	a, err := relay.NewAnnouncer(relayURL, id, info, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("announcer: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("announcer did not stop")
		}
	})
	testutil.Eventually(t, 5*time.Second, "announced", func() bool { return a.Status().Announced })
	return a
}

// client is a relay client on /ws/input.
type client struct {
	t testing.TB
	c *websocket.Conn
}

func newClient(t testing.TB, s *Server) *client {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl := &client{t: t, c: dial(t, ctx, s.URL()+"/ws/input")}
	t.Cleanup(func() { cl.c.CloseNow() })
	return cl
}

func (c *client) send(v any) {
	c.t.Helper()
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

func (c *client) read() map[string]any { c.t.Helper(); return readMap(c.t, c.c) }

func httpGet(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func httpURL(s *Server) string { return relay.HTTPBase(s.URL()) }

func metricsText(t testing.TB, s *Server) string {
	_, b := httpGet(t, httpURL(s)+"/metrics")
	return string(b)
}

// metric returns the value of one sample line ("name" or `name{l="v"}`).
func metric(t testing.TB, s *Server, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(metricsText(t, s), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("no metric %s", series)
	return 0
}
