package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/demo"
	"github.com/coder/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func init() {
	Register(Scenario{Name: "host/input", Description: "POST /input with the offline model beside a bare net/http JSON handler", Run: benchInput})
	Register(Scenario{Name: "host/ws-stream", Description: "STREAM chunks per second to one WebSocket client, model-chunk-to-client latency", Run: benchStream})
	Register(Scenario{Name: "host/ws-idle", Description: "memory per idle WebSocket session", Run: benchIdle})
	Register(Scenario{Name: "host/health-under-load", Description: "/health latency while POST /input and WebSocket sessions run", Run: benchHealth})
}

// Host is an in-process host on a loopback port with its data in a
// temporary directory.
type Host struct {
	URL    string
	Server *host.Server
	stop   func()
}

// StartHost starts a host for a benchmark; Close removes everything.
func StartHost(newAgent host.Factory, opts ...host.Option) (*Host, error) {
	dir, err := os.MkdirTemp("", "agenthost-bench-")
	if err != nil {
		return nil, err
	}
	base := []host.Option{host.WithDir(dir), host.WithCoDir(dir + "/.co"), host.WithConfigFile(""),
		host.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), host.WithTrust("open"),
		// Every benchmark client comes from 127.0.0.1: the per-address cap
		// would refuse the load the scenarios measure.
		host.WithMaxConnsPerIP(1 << 20)}
	s, err := host.New(context.Background(), newAgent, append(base, opts...)...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Shutdown(context.Background())
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	return &Host{URL: "http://" + ln.Addr().String(), Server: s, stop: func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	}}, nil
}

// Close stops the host and removes its data.
func (h *Host) Close() { h.stop() }

// WSURL is the host's WebSocket URL.
func (h *Host) WSURL() string { return "ws" + strings.TrimPrefix(h.URL, "http") + "/ws" }

func demoAgent() (*agent.Agent, error) { return demo.New("bench", "offline/demo", "") }

// Load runs conc clients posting body to url for d and returns each
// request's latency and the number of failures.
func Load(ctx context.Context, url, body string, conc int, d time.Duration) (lat []time.Duration, fails int64) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat, failed.Load()
}

// StoreStats reads the host's store counters (agenthost_store_commits_total
// and agenthost_store_writes_total) from its metrics.
func (h *Host) StoreStats() (commits, writes float64, err error) {
	rec := httptest.NewRecorder()
	h.Server.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the host's metrics: %w", err)
	}
	value := func(name string) (float64, error) {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 {
			return 0, fmt.Errorf("the host's metrics have no %s", name)
		}
		return f.GetMetric()[0].GetCounter().GetValue(), nil
	}
	if commits, err = value("agenthost_store_commits_total"); err != nil {
		return 0, 0, err
	}
	writes, err = value("agenthost_store_writes_total")
	return commits, writes, err
}

// BareJSON is the baseline: a net/http handler that decodes the same body
// and answers a small JSON object.
func BareJSON() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Prompt string `json:"prompt"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, `{"error":"bad"}`, 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"status": "done", "result": "echo: " + in.Prompt})
	})
}

func benchInput(ctx context.Context, o Options) ([]Row, error) {
	h, err := StartHost(demoAgent, host.WithWorkers(o.Concurrency))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	bare := &http.Server{Handler: BareJSON()}
	go bare.Serve(ln)
	defer bare.Close()

	body := `{"prompt":"Translate hello to Spanish"}`
	note := fmt.Sprintf("%d clients, %s", o.Concurrency, o.Duration)
	s0c, s0w, err := h.StoreStats()
	if err != nil {
		return nil, err
	}
	c0 := CPUTime()
	hl, hf := Load(ctx, h.URL+"/input", body, o.Concurrency, o.Duration)
	c1 := CPUTime()
	s1c, s1w, err := h.StoreStats()
	if err != nil {
		return nil, err
	}
	bl, bf := Load(ctx, "http://"+ln.Addr().String()+"/", body, o.Concurrency, o.Duration)
	c2 := CPUTime()
	if hf > 0 || bf > 0 {
		return nil, fmt.Errorf("%d host and %d bare requests failed", hf, bf)
	}
	hr := float64(len(hl)) / o.Duration.Seconds()
	br := float64(len(bl)) / o.Duration.Seconds()
	return []Row{
		{"host/input", "POST /input", hr, "req/s", note},
		{"host/input", "POST /input p50", Millis(Percentile(hl, 50)), "ms", "offline/demo, session persisted"},
		{"host/input", "POST /input p99", Millis(Percentile(hl, 99)), "ms", ""},
		{"host/input", "bare net/http JSON", br, "req/s", "same run, same clients"},
		{"host/input", "bare p50", Millis(Percentile(bl, 50)), "ms", ""},
		{"host/input", "bare p99", Millis(Percentile(bl, 99)), "ms", ""},
		{"host/input", "host / bare", hr / br, "ratio", "throughput of a full agent run vs a bare handler"},
		{"host/input", "CPU per POST /input", perOp(c1-c0, len(hl)), "µs", "process CPU (server and clients), robust on a shared machine"},
		{"host/input", "CPU per bare request", perOp(c2-c1, len(bl)), "µs", "same clients"},
		{"host/input", "store writes per POST /input", (s1w - s0w) / float64(max(len(hl), 1)), "writes", "each a durable change the run waits for or that rides along"},
		{"host/input", "store commits per POST /input", (s1c - s0c) / float64(max(len(hl), 1)), "commits", "transactions; concurrent runs' writes share them"},
	}, nil
}

// StreamRun sends one INPUT over c and returns the model chunks' count
// (stamped chunks, however many frames carried them), the time from the
// first frame to the last and each chunk's latency.
func StreamRun(ctx context.Context, c *websocket.Conn, prompt string) (n int, span time.Duration, lat []time.Duration, err error) {
	b, _ := json.Marshal(map[string]any{"type": "INPUT", "prompt": prompt})
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		return 0, 0, nil, err
	}
	var first time.Time
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return n, span, lat, err
		}
		now := time.Now()
		var f struct {
			Type    string `json:"type"`
			Chunk   string `json:"chunk"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(msg, &f); err != nil {
			return n, span, lat, err
		}
		switch f.Type {
		case "STREAM":
			if n == 0 {
				first = now
			}
			span = now.Sub(first)
			// A frame may carry several model chunks (the host gathers
			// text while a commit runs): each one's latency counts.
			for _, c := range strings.Fields(f.Chunk) {
				if d, ok := ChunkLatency(c, now); ok {
					lat = append(lat, d)
					n++
				}
			}
		case "OUTPUT":
			return n, span, lat, nil
		case "ERROR":
			return n, span, lat, fmt.Errorf("run failed: %s", f.Message)
		}
	}
}

// streamOnce runs one host with model and streams runs to one client for
// at least d.
func streamOnce(ctx context.Context, model StampModel, d time.Duration) (total int, span time.Duration, lat []time.Duration, err error) {
	h, err := StartHost(func() (*agent.Agent, error) { return agent.New("bench", agent.WithLLM(model)) })
	if err != nil {
		return 0, 0, nil, err
	}
	defer h.Close()
	c, _, err := websocket.Dial(ctx, h.WSURL(), nil)
	if err != nil {
		return 0, 0, nil, err
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 20)
	deadline := time.Now().Add(d)
	for runs := 0; runs < 1 || time.Now().Before(deadline); runs++ {
		n, s, l, err := StreamRun(ctx, c, "stream")
		if err != nil {
			return 0, 0, nil, err
		}
		total += n
		span += s
		lat = append(lat, l...)
	}
	return total, span, lat, nil
}

func benchStream(ctx context.Context, o Options) ([]Row, error) {
	// Throughput: a model that never waits, so the host is the limit.
	total, span, burst, err := streamOnce(ctx, StampModel{Chunks: 2000}, o.Duration)
	if err != nil {
		return nil, err
	}
	// Latency: a model producing 500 chunks/s, faster than real models.
	_, _, paced, err := streamOnce(ctx, StampModel{Chunks: 500, Delay: 2 * time.Millisecond}, o.Duration)
	if err != nil {
		return nil, err
	}
	return []Row{
		{"host/ws-stream", "STREAM to one client", float64(total) / span.Seconds(), "chunks/s", fmt.Sprintf("%d model chunks, persisted before they are sent", total)},
		{"host/ws-stream", "model chunk → client p50", Millis(Percentile(paced, 50)), "ms", "model at 500 chunks/s"},
		{"host/ws-stream", "model chunk → client p99", Millis(Percentile(paced, 99)), "ms", "model at 500 chunks/s"},
		{"host/ws-stream", "chunk → client p99, unpaced", Millis(Percentile(burst, 99)), "ms", "chunks queue behind the store"},
	}, nil
}

func heap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// openIdle opens n WebSocket connections to url; connect, if set, is sent
// on each and one frame is read back.
func openIdle(ctx context.Context, url string, n int, connect bool) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			for _, c := range conns {
				c.CloseNow()
			}
			return nil, err
		}
		conns = append(conns, c)
		if connect {
			c.Write(ctx, websocket.MessageText, []byte(`{"type":"CONNECT"}`))
			if _, _, err := c.Read(ctx); err != nil {
				return conns, err
			}
		}
	}
	return conns, nil
}

func benchIdle(ctx context.Context, o Options) ([]Row, error) {
	n := o.Sessions * 5
	h, err := StartHost(demoAgent, host.WithPingInterval(time.Hour))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	// Baseline: a bare websocket server that only holds connections, so
	// the client side's memory (in this same process) cancels out.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			if _, _, err := c.Read(r.Context()); err != nil {
				return
			}
		}
	})}
	go bare.Serve(ln)
	defer bare.Close()

	before := heap()
	g0 := runtime.NumGoroutine()
	conns, err := openIdle(ctx, "ws://"+ln.Addr().String(), n, false)
	if err != nil {
		return nil, err
	}
	bareMem := heap() - before
	bareG := runtime.NumGoroutine() - g0
	for _, c := range conns {
		c.CloseNow()
	}
	time.Sleep(200 * time.Millisecond)

	before = heap()
	g0 = runtime.NumGoroutine()
	conns, err = openIdle(ctx, h.WSURL(), n, true)
	if err != nil {
		return nil, err
	}
	hostMem := heap() - before
	hostG := runtime.NumGoroutine() - g0
	for _, c := range conns {
		c.CloseNow()
	}
	per := func(v uint64) float64 { return float64(v) / float64(n) / 1024 }
	return []Row{
		{"host/ws-idle", "idle session, client+server", per(hostMem), "KiB", fmt.Sprintf("%d connected sessions, one process", n)},
		{"host/ws-idle", "idle session over bare websocket", per(hostMem) - per(bareMem), "KiB", "host's own cost per session"},
		{"host/ws-idle", "goroutines per session", float64(hostG-bareG) / float64(n), "", "beyond a bare websocket"},
	}, nil
}

func benchHealth(ctx context.Context, o Options) ([]Row, error) {
	h, err := StartHost(demoAgent, host.WithWorkers(16))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	n := o.Sessions
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: time.Minute}
	stop := make(chan struct{})
	var lat []time.Duration
	var healthFails int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			t0 := time.Now()
			resp, err := client.Get(h.URL + "/health")
			if err != nil || resp.StatusCode != 200 {
				healthFails++
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(t0))
		}
	}()
	var fails atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			resp, err := client.Post(h.URL+"/input", "application/json", strings.NewReader(fmt.Sprintf(`{"prompt":"use add on %d and 1"}`, i)))
			if err != nil || resp.StatusCode != 200 {
				fails.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}(i)
		go func() {
			defer wg.Done()
			c, _, err := websocket.Dial(ctx, h.WSURL(), nil)
			if err != nil {
				fails.Add(1)
				return
			}
			defer c.CloseNow()
			if _, _, _, err := StreamRun(ctx, c, "Translate hello to Spanish"); err != nil {
				fails.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	<-done
	if fails.Load() > 0 || healthFails > 0 {
		return nil, fmt.Errorf("%d sessions and %d health checks failed", fails.Load(), healthFails)
	}
	note := fmt.Sprintf("%d POST /input + %d WebSocket sessions in %s", n, n, elapsed.Round(time.Millisecond))
	return []Row{
		{"host/health-under-load", "/health p50", Millis(Percentile(lat, 50)), "ms", note},
		{"host/health-under-load", "/health p99", Millis(Percentile(lat, 99)), "ms", fmt.Sprintf("%d samples", len(lat))},
		{"host/health-under-load", "/health max", Millis(Percentile(lat, 100)), "ms", ""},
	}, nil
}
