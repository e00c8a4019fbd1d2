package relayserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/relay"
	"github.com/agenthost/agenthost/trust"
)

// rawEcho is a SessionHandler that sends every frame straight back: the
// relay's cost, not JSON's, is what the benchmarks measure.
func rawEcho(ctx context.Context, c relay.FrameConn, _ string) {
	for {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			return
		}
		if c.WriteFrame(ctx, f) != nil {
			return
		}
	}
}

// benchRelay starts a relay with limits out of the way.
func benchRelay(b *testing.B) *Server {
	b.Helper()
	s, err := New(Config{
		Addr: "127.0.0.1:0", Logger: quietLogger(),
		ConnRatePerIP: -1, MaxConnsPerIP: -1, ClientFrameRate: -1, AgentFrameRate: -1,
		SessionRatePerAgent: -1, AnnounceRate: -1, MaxSessionsPerAgent: 1 << 20,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

func benchAnnouncer(b *testing.B, s *Server, id *trust.Identity, h relay.SessionHandler) {
	b.Helper()
	a, err := relay.NewAnnouncer(s.URL(), id, relay.AnnounceInfo{}, h, relay.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	for !a.Status().Announced {
		time.Sleep(5 * time.Millisecond)
	}
}

// echoServer is a plain WebSocket echo server: the direct path.
func echoServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, f, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if c.Write(r.Context(), typ, f) != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return "ws://" + ln.Addr().String()
}

func percentile(d []time.Duration, p float64) float64 {
	slices.Sort(d)
	return float64(d[int(float64(len(d)-1)*p)].Microseconds())
}

// BenchmarkRoundTrip measures a small frame's round trip to an echoing
// agent through the relay and, in the same run, over a direct WebSocket;
// the difference is what the relay adds.
func BenchmarkRoundTrip(b *testing.B) {
	s := benchRelay(b)
	id := identity(b, 1)
	benchAnnouncer(b, s, id, rawEcho)
	ctx := context.Background()
	direct := dial(b, ctx, echoServer(b))
	defer direct.CloseNow()
	relayed := dial(b, ctx, s.URL()+"/ws/input")
	defer relayed.CloseNow()
	frame := []byte(`{"type":"INPUT","to":"` + id.Address() + `","prompt":"ping"}`)
	rt := func(c *websocket.Conn) time.Duration {
		t0 := time.Now()
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	for range 50 { // warm up both paths
		rt(direct)
		rt(relayed)
	}
	var dd, rd []time.Duration
	b.ResetTimer()
	for range b.N {
		dd = append(dd, rt(direct))
		rd = append(rd, rt(relayed))
	}
	b.StopTimer()
	b.ReportMetric(percentile(dd, 0.5), "direct-p50-µs")
	b.ReportMetric(percentile(dd, 0.99), "direct-p99-µs")
	b.ReportMetric(percentile(rd, 0.5), "relay-p50-µs")
	b.ReportMetric(percentile(rd, 0.99), "relay-p99-µs")
	b.ReportMetric(percentile(rd, 0.5)-percentile(dd, 0.5), "added-p50-µs")
}

// BenchmarkForward measures frames forwarded per second in each direction
// for 256-byte frames: agent→client is a streamed answer, client→agent a
// burst of input.
func BenchmarkForward(b *testing.B) {
	payload := strings.Repeat("x", 200)
	b.Run("agent_to_client", func(b *testing.B) {
		s := benchRelay(b)
		id := identity(b, 1)
		chunk := []byte(`{"type":"STREAM","chunk":"` + payload + `"}`)
		benchAnnouncer(b, s, id, func(ctx context.Context, c relay.FrameConn, _ string) {
			f, err := c.ReadFrame(ctx)
			if err != nil {
				return
			}
			n := 0
			fmt.Sscanf(relay.StringField(f, "n"), "%d", &n)
			for range n {
				if c.WriteFrame(ctx, chunk) != nil {
					return
				}
			}
			c.ReadFrame(ctx)
		})
		ctx := context.Background()
		c := dial(b, ctx, s.URL()+"/ws/input")
		defer c.CloseNow()
		b.SetBytes(int64(len(chunk)))
		b.ResetTimer()
		c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"INPUT","to":%q,"n":"%d"}`, id.Address(), b.N)))
		for range b.N {
			if _, _, err := c.Read(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	})
	b.Run("client_to_agent", func(b *testing.B) {
		s := benchRelay(b)
		id := identity(b, 1)
		got := make(chan struct{}, 1024)
		benchAnnouncer(b, s, id, func(ctx context.Context, c relay.FrameConn, _ string) {
			for {
				if _, err := c.ReadFrame(ctx); err != nil {
					return
				}
				got <- struct{}{}
			}
		})
		ctx := context.Background()
		c := dial(b, ctx, s.URL()+"/ws/input")
		defer c.CloseNow()
		frame := []byte(`{"type":"INPUT","to":"` + id.Address() + `","prompt":"` + payload + `"}`)
		b.SetBytes(int64(len(frame)))
		b.ResetTimer()
		go func() {
			for range b.N {
				if c.Write(ctx, websocket.MessageText, frame) != nil {
					return
				}
			}
		}()
		lost := make(chan string, 1)
		go func() { // the relay answers only when it ends the session
			_, f, err := c.Read(ctx)
			if err == nil {
				lost <- string(f)
			}
			close(lost)
		}()
		for i := range b.N {
			select {
			case <-got:
			case f := <-lost:
				b.Fatalf("session ended after %d of %d frames: %s", i, b.N, f)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	})
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMemoryPerAgent connects agents to a relay and reports the heap
// and goroutines each costs. Both ends live in this process, so the same
// number of bare WebSocket connections to a server that only reads is
// measured first and subtracted: relay-bytes/agent is the relay's own cost
// (registry, queues, buffers, its two goroutines), beyond the socket pair.
func BenchmarkMemoryPerAgent(b *testing.B) {
	const n = 300
	ctx := context.Background()
	ids := make([]*trust.Identity, n)
	for i := range ids {
		ids[i], _ = trust.NewIdentity()
	}
	for range b.N {
		b.StopTimer()
		// Baseline: n bare connections to a server that holds them.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		hold := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			c.Read(r.Context())
			c.CloseNow()
		})}
		go hold.Serve(ln)
		before := heapAfterGC()
		var bare []*websocket.Conn
		for range n {
			c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String(), nil)
			if err != nil {
				b.Fatal(err)
			}
			bare = append(bare, c)
		}
		pair := float64(heapAfterGC()-before) / n
		for _, c := range bare {
			c.CloseNow()
		}
		hold.Close()

		s := benchRelay(b)
		g0 := runtime.NumGoroutine()
		before = heapAfterGC()
		var agents []*websocket.Conn
		for _, id := range ids {
			c := dial(b, ctx, s.URL()+"/ws/announce")
			f, _ := relay.BuildAnnounce(id, relay.AnnounceInfo{Summary: "an agent with a typical one-line summary of what it does",
				Endpoints: []string{"http://192.168.1.5:8000", "ws://192.168.1.5:8000/ws"},
				Profile:   &relay.Profile{Alias: "agent", Tools: []string{"search", "fetch"}, Model: "openai/gpt-4o-mini"}}, s.URL(), time.Now())
			c.Write(ctx, websocket.MessageText, f)
			if _, _, err := c.Read(ctx); err != nil {
				b.Fatal(err)
			}
			agents = append(agents, c)
		}
		total := float64(heapAfterGC()-before) / n
		goroutines := float64(runtime.NumGoroutine()-g0) / n
		for _, c := range agents {
			c.CloseNow()
		}
		b.ReportMetric(total, "bytes/agent")
		b.ReportMetric(pair, "ws-pair-bytes")
		b.ReportMetric(total-pair, "relay-bytes/agent")
		b.ReportMetric(goroutines, "goroutines/agent")
		b.StartTimer()
	}
}

// vocabulary for synthetic agents.
var words = strings.Fields(`translate language weather forecast city poem write code review
python golang database query sql image resize photo music playlist recipe cook travel flight hotel
booking calendar meeting email summarize document pdf legal contract finance stock market crypto
health fitness workout diet news sport football chess math solve equation physics chemistry
biology history art paint design logo website deploy server docker kubernetes security audit`)

// Benchmark10kAgents: ten thousand agents announced on one relay (verified
// ANNOUNCEs into the registry and index, without sockets, which
// BenchmarkMemoryPerAgent covers): memory per agent and search latency.
func Benchmark10kAgents(b *testing.B) {
	const n = 10000
	s, err := New(Config{Logger: quietLogger(), MaxAgents: n + 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(k int) string {
		var ws []string
		for range k {
			ws = append(ws, words[r.IntN(len(words))])
		}
		return strings.Join(ws, " ")
	}
	now := time.Now()
	frames := make([][]byte, n)
	for i := range frames {
		id, _ := trust.NewIdentity()
		tools := []string{words[r.IntN(len(words))] + "_" + words[r.IntN(len(words))], words[r.IntN(len(words))]}
		frames[i], _ = relay.BuildAnnounce(id, relay.AnnounceInfo{
			Summary:   "I " + pick(12) + ". " + pick(10),
			Endpoints: []string{"http://10.0.0.1:8000"},
			Profile:   &relay.Profile{Alias: pick(1), Tools: tools, Examples: []string{pick(6), pick(6)}},
		}, "wss://relay.example", now)
	}
	before := heapAfterGC()
	t0 := time.Now()
	for _, f := range frames {
		ann, err := relay.VerifyAnnounce(f, now, s.cfg.ClockSkew)
		if err != nil {
			b.Fatal(err)
		}
		ac := &agentConn{s: s, p: newPeer(nil, &s.cfg, now), sessions: map[string]*clientConn{}}
		if _, err := s.reg.accept(ac, ann, now); err != nil {
			b.Fatal(err)
		}
	}
	announceRate := n / time.Since(t0).Seconds()
	frames = nil
	mem := float64(heapAfterGC()-before) / n
	queries := []string{"translate", "weather forecast city", "write python code review", "detect language", "kubernetes_deploy"}
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		t := time.Now()
		res := s.reg.search(queries[i%len(queries)], 20, 0)
		lat = append(lat, time.Since(t))
		if res.Total == 0 {
			b.Fatalf("no hits for %q", queries[i%len(queries)])
		}
	}
	b.StopTimer()
	b.ReportMetric(mem, "bytes/agent")
	b.ReportMetric(announceRate, "announces/s")
	b.ReportMetric(percentile(lat, 0.5), "search-p50-µs")
	b.ReportMetric(percentile(lat, 0.99), "search-p99-µs")
}
