package platform_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform/platformbench"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

func benchRig(b *testing.B) *platformbench.Rig {
	b.Helper()
	r, err := platformbench.Start(platformtest.Agenthost(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	return r
}

// BenchmarkProvision is POST /api/v1/agents until RUNNING with the process
// driver and the real runtime; p50 and p99 are reported.
func BenchmarkProvision(b *testing.B) {
	r := benchRig(b)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		_, d, err := r.Create(context.Background(), fmt.Sprintf("b-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		i++
		lat = append(lat, d)
	}
	b.ReportMetric(float64(platformbench.Percentile(lat, 50))/1e6, "p50-ms")
	b.ReportMetric(float64(platformbench.Percentile(lat, 99))/1e6, "p99-ms")
}

// BenchmarkIdleRSS reports the resident memory of one idle runtime.
func BenchmarkIdleRSS(b *testing.B) {
	r := benchRig(b)
	var rss int64
	for b.Loop() {
		v, err := r.IdleRSS(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		rss = v
	}
	b.ReportMetric(float64(rss)/(1<<20), "MiB-rss")
	b.ReportMetric(float64(1<<30)/float64(rss), "agents/GB")
}

// BenchmarkMessages sends messages through the platform to 4 runtimes
// with offline/demo, each waiting for its answer, polled or followed on the
// event stream; msg/s is reported.
func BenchmarkMessages(b *testing.B) {
	r := benchRig(b)
	for _, c := range []struct {
		name   string
		follow platformbench.Follow
	}{{"poll", platformbench.Poll}, {"events", platformbench.Events}} {
		b.Run(c.name, func(b *testing.B) {
			var res platformbench.Throughput
			for b.Loop() {
				var err error
				if res, err = r.MessageRate(context.Background(), 4, time.Second, c.follow); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.Turns)/res.Elapsed.Seconds(), "msg/s")
			b.ReportMetric(float64(platformbench.Percentile(res.Latency, 99))/1e6, "p99-ms")
		})
	}
}
