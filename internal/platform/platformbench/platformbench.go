// Package platformbench measures the platform with the process driver and
// the real coding runtime: time from POST /api/v1/agents to RUNNING
// (p50/p99), the idle memory of one runtime (and so agents per GB), and
// messages per second through the platform with offline/demo. The go test
// benchmarks (internal/platform) and `agenthost bench` (scenarios
// registered here as platform/...) share this code.
package platformbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/auth"
	"github.com/agenthost/agenthost/internal/runtime/process"
	"github.com/agenthost/agenthost/internal/sse"
)

// Rig is an in-process platform on loopback, with SQLite and the process
// driver in a temporary directory, running agenthost binaries as runtimes.
type Rig struct {
	URL   string
	Token string

	dir    string
	driver *process.Driver
	srv    *platform.Server
	done   chan error
	http   *http.Client
}

// Start starts a rig whose runtimes run binary (an agenthost executable)
// as `serve --role coding`.
func Start(binary string) (*Rig, error) {
	dir, err := os.MkdirTemp("", "agenthost-platform-bench-")
	if err != nil {
		return nil, err
	}
	// Runtimes under uids of their own (a root platform) must traverse it.
	if err := os.Chmod(dir, 0o711); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r := &Rig{dir: dir, done: make(chan error, 1), http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.driver, err = process.New(process.Options{Root: filepath.Join(dir, "runtimes"), Logger: quiet})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r.srv, err = platform.New(platform.Config{
		DataDir: dir, Driver: r.driver, Logger: quiet, Getenv: func(string) string { return "" },
		Agents: agents.Config{
			Command: []string{binary, "serve", "--role", "coding"}, InheritListener: true, StopOnClose: true,
			Ports: agents.PortRange{Min: 31000, Max: 31999}, MaxRunning: 1000, MaxAgentsPerOrg: 100000,
		},
	})
	if err != nil {
		r.driver.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Close()
		return nil, err
	}
	r.URL = "http://" + ln.Addr().String()
	go func() { r.done <- r.srv.Serve(context.Background(), ln) }()
	<-r.srv.Reconciled()
	r.Token, _, _, err = auth.Issue(context.Background(), r.srv.Store(), "bench", "bench", time.Now(), ids.New)
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close stops the platform and every runtime and removes the data.
func (r *Rig) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r.srv.Shutdown(ctx)
	hs, _ := r.driver.List(ctx)
	for _, h := range hs {
		r.driver.Destroy(ctx, h)
	}
	r.driver.Close()
	os.RemoveAll(r.dir)
}

// Do sends a JSON request with the rig's token and decodes a 200 answer.
func (r *Rig) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Create creates an agent and returns its id and the time the call took
// (the platform answers once the runtime is RUNNING).
func (r *Rig) Create(ctx context.Context, name string) (string, time.Duration, error) {
	start := time.Now()
	var out struct {
		AgentID string `json:"agentId"`
	}
	err := r.Do(ctx, "POST", "/api/v1/agents", map[string]any{"name": name, "model": "offline/demo"}, &out)
	return out.AgentID, time.Since(start), err
}

// WaitIdle polls the agent until it is not busy.
func (r *Rig) WaitIdle(ctx context.Context, id string) error {
	for {
		var st struct {
			Busy bool `json:"busy"`
		}
		if err := r.Do(ctx, "GET", "/api/v1/agents/"+id, nil, &st); err != nil {
			return err
		}
		if !st.Busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ProvisionLatencies creates n agents one after another and returns how
// long each POST /api/v1/agents took to answer with a RUNNING agent.
func (r *Rig) ProvisionLatencies(ctx context.Context, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := range n {
		_, d, err := r.Create(ctx, fmt.Sprintf("provision-%d", i))
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// IdleRSS creates an agent, lets it settle after one short turn, and
// returns its runtime's resident memory in bytes (/proc, Linux).
func (r *Rig) IdleRSS(ctx context.Context) (int64, error) {
	id, _, err := r.Create(ctx, "idle")
	if err != nil {
		return 0, err
	}
	if err := r.Do(ctx, "POST", "/api/v1/agents/"+id+"/messages", map[string]any{"message": "hello"}, nil); err != nil {
		return 0, err
	}
	if err := r.WaitIdle(ctx, id); err != nil {
		return 0, err
	}
	time.Sleep(500 * time.Millisecond)
	a, err := r.srv.Store().FindAgent(ctx, id)
	if err != nil {
		return 0, err
	}
	var h struct {
		State struct {
			PID int `json:"pid"`
		} `json:"state"`
	}
	if err := json.Unmarshal(a.Handle, &h); err != nil || h.State.PID == 0 {
		return 0, fmt.Errorf("no pid in the runtime handle: %v", err)
	}
	return rss(h.State.PID)
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// Throughput is what MessageRate measured.
type Throughput struct {
	Turns   int             // messages answered (turn complete)
	Elapsed time.Duration   // measuring time
	Latency []time.Duration // POST /messages → idle again, per message
	Accept  []time.Duration // POST /messages answer time
}

// Follow is how a message benchmark's client learns that a turn ended.
type Follow int

const (
	// Poll asks GET /api/v1/agents/{id} every 5 ms until busy is false,
	// as a client without an event stream does.
	Poll Follow = iota
	// Events reads the agent's event stream (GET /api/v1/agents/{id}/events,
	// opened once per agent) until the status event that ends the turn:
	// the status pushed to a client instead of polled.
	Events
)

func (f Follow) String() string {
	if f == Events {
		return "event stream"
	}
	return "polled every 5 ms"
}

// MessageRate runs conc workers for d, each on an agent of its own: send a
// message through the platform, wait until the agent is idle again (as
// follow says), repeat.
func (r *Rig) MessageRate(ctx context.Context, conc int, d time.Duration, follow Follow) (Throughput, error) {
	ids := make([]string, conc)
	for i := range ids {
		id, _, err := r.Create(ctx, fmt.Sprintf("rate-%d", i))
		if err != nil {
			return Throughput{}, err
		}
		ids[i] = id
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the event streams
	var mu sync.Mutex
	var res Throughput
	var failed atomic.Value
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait := func() error { return r.WaitIdle(ctx, id) }
			if follow == Events {
				ev, err := r.openEvents(ctx, id)
				if err != nil {
					failed.Store(err)
					return
				}
				defer ev.Close()
				rd := sse.NewReader(ev)
				wait = func() error { return waitTurnEnd(rd) }
			}
			for time.Now().Before(stop) && ctx.Err() == nil {
				t0 := time.Now()
				if err := r.Do(ctx, "POST", "/api/v1/agents/"+id+"/messages", map[string]any{"message": "hello, how are you?"}, nil); err != nil {
					failed.Store(err)
					return
				}
				t1 := time.Now()
				if err := wait(); err != nil {
					failed.Store(err)
					return
				}
				mu.Lock()
				res.Turns++
				res.Accept = append(res.Accept, t1.Sub(t0))
				res.Latency = append(res.Latency, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		return res, err
	}
	return res, nil
}

// openEvents opens the agent's event stream (live events only).
func (r *Rig) openEvents(ctx context.Context, id string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", r.URL+"/api/v1/agents/"+id+"/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.Token)
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("GET events: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return resp.Body, nil
}

// waitTurnEnd reads events until the status that ends a turn with the
// agent idle (a result, agentBusy false).
func waitTurnEnd(rd *sse.Reader) error {
	for {
		ev, err := rd.Next()
		if err != nil {
			return fmt.Errorf("event stream: %w", err)
		}
		if ev.Name != "status" {
			continue
		}
		var st struct {
			AgentBusy bool   `json:"agentBusy"`
			Result    string `json:"result"`
		}
		if err := json.Unmarshal(ev.Data, &st); err != nil {
			return fmt.Errorf("status event %s: %w", ev.Data, err)
		}
		if st.Result != "" && !st.AgentBusy {
			return nil
		}
	}
}

// Percentile returns the p-th percentile (0–100) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p/100)]
}
