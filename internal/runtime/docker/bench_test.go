package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/runtime/process"
	"github.com/agenthost/agenthost/internal/runtime/runtimetest"
)

// benchDriver is one driver under benchmark, with how to run the fake
// runtime in it and how to read a runtime's memory.
type benchDriver struct {
	name    string
	d       runtime.Driver
	command []string
	memory  func(h *runtime.Handle) (int64, error)
}

// benchDrivers returns the process driver and the Docker driver, both
// running the fake runtime, so one run compares them.
func benchDrivers(b *testing.B) []benchDriver {
	c := engine(b)
	ensureTestImage(b, c)
	pd, err := process.New(process.Options{Root: b.TempDir(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pd.Close() })
	dd := newDriver(b, c, b.TempDir())
	return []benchDriver{
		{"process", pd, []string{runtimetest.FakeRuntime(b)}, processRSS},
		{"docker", dd, []string{"fakeruntime"}, func(h *runtime.Handle) (int64, error) { return containerMemory(c, h) }},
	}
}

// BenchmarkCreateToRunning measures Start until the runtime answers
// /health (what the platform's create waits for before RUNNING), one
// runtime at a time, and reports p50 and p99.
func BenchmarkCreateToRunning(b *testing.B) {
	for _, bd := range benchDrivers(b) {
		b.Run(bd.name, func(b *testing.B) {
			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				s := runtime.Spec{ID: fmt.Sprintf("bench%d-%d", os.Getpid(), i), Port: runtimetest.FreePort(b), Command: bd.command}
				begin := time.Now()
				h, err := bd.d.Start(context.Background(), s)
				if err != nil {
					b.Fatal(err)
				}
				if err := runtimetest.WaitHealthy(context.Background(), h.Endpoint, 60*time.Second); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(begin))
				b.StopTimer()
				if err := bd.d.Destroy(context.Background(), h); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			slices.Sort(lat)
			b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
			b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
		})
	}
}

// BenchmarkIdleMemory starts runtimes, lets them idle, and reports the
// memory one takes: the process's RSS for the process driver, the
// container's anonymous and file-mapped memory (its processes' RSS: the
// runtime and Docker's init) for Docker.
func BenchmarkIdleMemory(b *testing.B) {
	const n = 4
	for _, bd := range benchDrivers(b) {
		b.Run(bd.name, func(b *testing.B) {
			var per float64
			for b.Loop() {
				var hs []*runtime.Handle
				for i := range n {
					s := runtime.Spec{ID: fmt.Sprintf("idle%d-%d", os.Getpid(), i), Port: runtimetest.FreePort(b), Command: bd.command}
					h, err := bd.d.Start(context.Background(), s)
					if err != nil {
						b.Fatal(err)
					}
					hs = append(hs, h)
					if err := runtimetest.WaitHealthy(context.Background(), h.Endpoint, 60*time.Second); err != nil {
						b.Fatal(err)
					}
				}
				time.Sleep(time.Second)
				var total int64
				for _, h := range hs {
					m, err := bd.memory(h)
					if err != nil {
						b.Fatal(err)
					}
					total += m
				}
				per = float64(total) / n / (1 << 20)
				for _, h := range hs {
					bd.d.Destroy(context.Background(), h)
				}
			}
			b.ReportMetric(per, "MiB/agent")
		})
	}
}

// processRSS reads VmRSS of a process driver runtime.
func processRSS(h *runtime.Handle) (int64, error) {
	var st struct{ PID int }
	if err := json.Unmarshal(h.State, &st); err != nil {
		return 0, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", st.PID))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", st.PID)
}

// containerMemory is the resident memory of a container's processes, as
// comparable with a process's VmRSS as the cgroup allows: anonymous plus
// file-mapped pages.
func containerMemory(c *client.Client, h *runtime.Handle) (int64, error) {
	res, err := c.ContainerStats(context.Background(), decodeState(h).Container, client.ContainerStatsOptions{})
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var s struct {
		MemoryStats struct {
			Stats map[string]int64 `json:"stats"`
		} `json:"memory_stats"`
	}
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return 0, err
	}
	m := s.MemoryStats.Stats
	if _, v1 := m["total_rss"]; v1 {
		return m["total_rss"] + m["total_mapped_file"], nil
	}
	return m["anon"] + m["file_mapped"], nil
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, (len(sorted)*p+99)/100-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
