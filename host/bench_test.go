package host_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/bench"
	"github.com/coder/websocket"
)

// benchPost measures POST /input (or any JSON POST) with b.RunParallel and
// reports p50/p99 beside ns/op.
func benchPost(b *testing.B, url string) {
	body := `{"prompt":"Translate hello to Spanish"}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	lat := make(chan time.Duration, b.N+64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			resp, err := client.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			lat <- time.Since(t0)
		}
	})
	b.StopTimer()
	close(lat)
	var ds []time.Duration
	for d := range lat {
		ds = append(ds, d)
	}
	b.ReportMetric(bench.Millis(bench.Percentile(ds, 50)), "p50-ms")
	b.ReportMetric(bench.Millis(bench.Percentile(ds, 99)), "p99-ms")
}

// BenchmarkInput: POST /input with the offline model, a full run with its
// session persisted. Compare with BenchmarkBareJSON from the same run.
func BenchmarkInput(b *testing.B) {
	h, err := bench.StartHost(func() (*agent.Agent, error) { return agent.New("bench") }, host.WithWorkers(32))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	b.SetParallelism(4)
	c0, w0, err := h.StoreStats()
	if err != nil {
		b.Fatal(err)
	}
	benchPost(b, h.URL+"/input")
	c1, w1, err := h.StoreStats()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric((c1-c0)/float64(b.N), "commits/op")
	b.ReportMetric((w1-w0)/float64(b.N), "writes/op")
}

// BenchmarkBareJSON is the baseline: a bare net/http JSON handler.
func BenchmarkBareJSON(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: bench.BareJSON()}
	go srv.Serve(ln)
	defer srv.Close()
	b.SetParallelism(4)
	benchPost(b, "http://"+ln.Addr().String()+"/")
}

// BenchmarkWSStream: STREAM chunks to one client from a model that never
// waits; ns/op is per chunk.
func BenchmarkWSStream(b *testing.B) { benchStream(b, bench.StampModel{Chunks: 1000}) }

// BenchmarkWSChunkLatency: time from a model chunk to the client, with the
// model producing 500 chunks/s (faster than real models).
func BenchmarkWSChunkLatency(b *testing.B) {
	benchStream(b, bench.StampModel{Chunks: 100, Delay: 2 * time.Millisecond})
}

func benchStream(b *testing.B, model bench.StampModel) {
	h, err := bench.StartHost(func() (*agent.Agent, error) { return agent.New("bench", agent.WithLLM(model)) })
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, h.WSURL(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 20)
	var lat []time.Duration
	total := 0
	b.ResetTimer()
	for total < b.N {
		n, _, l, err := bench.StreamRun(ctx, c, "go")
		if err != nil {
			b.Fatal(err)
		}
		total += n
		lat = append(lat, l...)
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "chunks/s")
	b.ReportMetric(bench.Millis(bench.Percentile(lat, 50)), "p50-ms")
	b.ReportMetric(bench.Millis(bench.Percentile(lat, 99)), "p99-ms")
}

// BenchmarkIdleWSMemory reports the heap and stack held per idle,
// connected WebSocket session (client and server in this process).
func BenchmarkIdleWSMemory(b *testing.B) {
	h, err := bench.StartHost(func() (*agent.Agent, error) { return agent.New("bench") }, host.WithPingInterval(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	const n = 200
	var per float64
	for i := 0; i < b.N; i++ {
		before := memInUse()
		conns := make([]*websocket.Conn, 0, n)
		for j := 0; j < n; j++ {
			c, _, err := websocket.Dial(ctx, h.WSURL(), nil)
			if err != nil {
				b.Fatal(err)
			}
			c.Write(ctx, websocket.MessageText, []byte(`{"type":"CONNECT"}`))
			if _, _, err := c.Read(ctx); err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		per = float64(memInUse()-before) / n
		for _, c := range conns {
			c.CloseNow()
		}
	}
	b.ReportMetric(per, "bytes/session")
}

func memInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
