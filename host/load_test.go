package host_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/coder/websocket"
)

// TestLoad: 200 concurrent POST /input and 200 WebSocket sessions with the
// offline model all complete without an error while /health keeps
// answering. Latency is reported, not asserted (see agenthost bench), and
// nothing waits a fixed time: 400 runs through 16 workers take seconds on
// an idle machine and minutes on two loaded cores under -race, and only
// an error or a hang past the test's deadline fails.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	h := startHost(t, "offline/demo", host.WithWorkers(16))
	ctx := testutil.Context(t)
	const n = 200
	var errs atomic.Int64
	// Errors differ in concrete type, so the first one is kept under a
	// mutex rather than in an atomic.Value (which panics on mixed types).
	var (
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errs.Add(1)
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(url string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return nil, err
		}
		return client.Do(req)
	}
	stop := make(chan struct{})
	var health []time.Duration
	var healthFails int
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			t0 := time.Now()
			resp, err := get(h.URL + "/health")
			if err != nil || resp.StatusCode != 200 {
				healthFails++
				continue
			}
			resp.Body.Close()
			health = append(health, time.Since(t0))
		}
	}()

	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			body := fmt.Sprintf(`{"prompt":"use add on %d and 1"}`, i)
			req, err := http.NewRequestWithContext(ctx, "POST", h.URL+"/input", strings.NewReader(body))
			if err != nil {
				fail(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				fail(err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				fail(fmt.Errorf("POST /input: %d", resp.StatusCode))
			}
		}(i)
		go func(i int) {
			defer wg.Done()
			c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/ws", nil)
			if err != nil {
				fail(err)
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 24)
			c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"INPUT","prompt":"My name is User%d"}`, i)))
			for {
				_, b, err := c.Read(ctx)
				if err != nil {
					fail(err)
					return
				}
				s := string(b)
				if strings.Contains(s, `"type":"ERROR"`) {
					fail(fmt.Errorf("ws: %s", s))
					return
				}
				if strings.Contains(s, `"type":"OUTPUT"`) {
					if !strings.Contains(s, fmt.Sprintf("User%d", i)) {
						fail(fmt.Errorf("ws %d: wrong answer %s", i, s))
					}
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(stop)
	<-healthDone
	if errs.Load() > 0 {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d errors; first: %v", errs.Load(), firstErr)
	}
	if healthFails > 0 || len(health) == 0 {
		t.Fatalf("/health failed %d times (%d answers)", healthFails, len(health))
	}
	sort.Slice(health, func(i, j int) bool { return health[i] < health[j] })
	t.Logf("/health during load: %d answers, p50 %v, p99 %v", len(health), health[len(health)/2], health[len(health)*99/100])
}

// TestShutdownInterruptsRuns: runs still going when the grace period ends
// are interrupted, and recorded so before Shutdown returns.
func TestShutdownInterruptsRuns(t *testing.T) {
	t.Setenv("AGENTHOST_OFFLINE_DELAY", "100ms")
	dir := t.TempDir()
	s, err := newIn(t, dir, host.WithModel("offline/slow"))
	if err != nil {
		t.Fatal(err)
	}
	url := httpServer(t, s)
	w := dialWS(t, &testHost{URL: url})
	w.send(map[string]any{"type": "INPUT", "prompt": "please tell me something long enough to stream in many chunks"})
	first, _ := w.until("STREAM")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// A new host on the same data sees the run recorded as interrupted (a
	// Shutdown that waited for the run instead would leave it done).
	s2, err := newIn(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	url2 := httpServer(t, s2)
	_, m, _ := do(t, "GET", url2+"/sessions/"+first["session_id"].(string), nil)
	if m["status"] != "interrupted" {
		t.Fatalf("after shutdown: %v", m)
	}
}
