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
	"github.com/agenthost/agenthost/internal/testutil"
)

// benchDriver is one driver under benchmark, with how to run the fake
// runtime in it and how to read a runtime's memory.
type benchDriver struct {
	name    string
	d       runtime.Driver
	command []string
	memory  func(h *runtime.Handle) (int64, error)
	// overhead is the host memory spent beside the runtime (Docker's
	// shim and port proxy); nil when none.
	overhead func(h *runtime.Handle) int64
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
		{"process", pd, []string{runtimetest.FakeRuntime(b)}, processRSS, nil},
		{"docker", dd, []string{"fakeruntime"}, func(h *runtime.Handle) (int64, error) { return containerMemory(c, h) }, engineOverhead},
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
				s := runtime.Spec{ID: fmt.Sprintf("bench%d-%d", os.Getpid(), i), Port: testutil.FreePort(b), Command: bd.command}
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
// anonymous memory one takes — what each more agent costs, the binary's
// pages being shared by all either way: the process's RssAnon for the
// process driver, the container's anonymous memory (the runtime and
// Docker's init; cgroup total_rss or anon) for Docker.
func BenchmarkIdleMemory(b *testing.B) {
	const n = 4
	for _, bd := range benchDrivers(b) {
		b.Run(bd.name, func(b *testing.B) {
			var per, over float64
			for b.Loop() {
				var hs []*runtime.Handle
				for i := range n {
					s := runtime.Spec{ID: fmt.Sprintf("idle%d-%d", os.Getpid(), i), Port: testutil.FreePort(b), Command: bd.command}
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
				var total, extra int64
				for _, h := range hs {
					m, err := bd.memory(h)
					if err != nil {
						b.Fatal(err)
					}
					total += m
					if bd.overhead != nil {
						extra += bd.overhead(h)
					}
				}
				per = float64(total) / n / (1 << 20)
				over = float64(extra) / n / (1 << 20)
				for _, h := range hs {
					bd.d.Destroy(context.Background(), h)
				}
			}
			b.ReportMetric(per, "anon-MiB/agent")
			if bd.overhead != nil {
				b.ReportMetric(over, "engine-RSS-MiB/agent")
			}
		})
	}
}

// processRSS reads RssAnon of a process driver runtime.
func processRSS(h *runtime.Handle) (int64, error) {
	var st struct{ PID int }
	if err := json.Unmarshal(h.State, &st); err != nil {
		return 0, err
	}
	return procStatus(st.PID, "RssAnon:")
}

// engineOverhead is the RSS of the engine's processes for one container
// on this host: its containerd shim and the docker-proxy of its port
// (zero for a remote engine).
func engineOverhead(h *runtime.Handle) int64 {
	st := decodeState(h)
	dirs, _ := os.ReadDir("/proc")
	var total int64
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		shim := strings.Contains(args[0], "containerd-shim") && slices.Contains(args, st.Container)
		proxy := strings.HasSuffix(args[0], "docker-proxy") && slices.Contains(args, strconv.Itoa(st.Port))
		if shim || proxy {
			if rss, err := procStatus(pid, "VmRSS:"); err == nil {
				total += rss
			}
		}
	}
	return total
}

// procStatus reads a "kB" field of /proc/pid/status in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// containerMemory is the anonymous memory of a container's processes.
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
		return m["total_rss"], nil
	}
	return m["anon"], nil
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, (len(sorted)*p+99)/100-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
