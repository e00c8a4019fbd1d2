// Package runtimetest is the conformance suite every runtime.Driver runs,
// so that the platform sees the same behaviour from a child process and
// from a container: the runtime answers on its endpoint with the
// environment it was given and nothing else, keeps its workspace across
// stop and start, is killed when it ignores SIGTERM, reports its exit code,
// survives a restart of the platform through Recover, cannot reach
// another runtime or the platform, and is held to its memory and process
// limits.
//
// The runtime under test is a real program, testdata/fakeruntime (see
// FakeRuntime), standing in for `agenthost serve`.
package runtimetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/testutil"
)

// Harness adapts a driver to the suite.
type Harness struct {
	// New returns a driver keeping its state in dir and registers its
	// cleanup with t. The suite calls it a second time with the same dir
	// to play a platform restart.
	New func(t *testing.T, dir string) runtime.Driver
	// Command returns the argv that runs the fake runtime with args inside
	// the driver's sandbox (for the process driver: FakeRuntime(t) then
	// args).
	Command func(t *testing.T, args ...string) []string
	// Image is Spec.Image, for container drivers.
	Image string
	// NotIsolated, when set, says why this driver does not itself keep
	// runtimes from each other and from the platform (the process driver
	// run by an ordinary user, whose runtimes share that user and rely on
	// the tool sandbox), and skips the cases that attack across runtimes.
	NotIsolated string
}

// Run runs the suite; every subtest runs in parallel with its own driver
// state directory.
func Run(t *testing.T, h Harness) {
	// A variable of the platform's own, which no runtime may see.
	platformSecret := fmt.Sprintf("platform-secret-%d", time.Now().UnixNano())
	os.Setenv(platformSecretVar, platformSecret)
	t.Cleanup(func() { os.Unsetenv(platformSecretVar) })

	tests := []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"StartServesHTTP", testStartServesHTTP},
		{"Environment", testEnvironment},
		{"WorkspacePersists", testWorkspacePersists},
		{"GracefulStop", testGracefulStop},
		{"StopKillsAfterTimeout", testStopKillsAfterTimeout},
		{"StopAtOnce", testStopAtOnce},
		{"WaitExitCode", testWaitExitCode},
		{"WaitContext", testWaitContext},
		{"InspectLogs", testInspectLogs},
		{"Destroy", testDestroy},
		{"StartWhileRunning", testStartWhileRunning},
		{"Recover", testRecover},
		{"RecoverGone", testRecoverGone},
		{"RecoverThenExit", testRecoverThenExit},
		{"Concurrent", testConcurrent},
		{"Isolation", testIsolation},
		{"MemoryLimit", testMemoryLimit},
		{"PidsLimit", testPidsLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &suite{h: h, dir: t.TempDir(), secret: platformSecret}
			s.d = h.New(t, s.dir)
			tc.fn(t, s)
		})
	}
}

const platformSecretVar = "AGENTHOST_RUNTIMETEST_PLATFORM_SECRET"

// suite is one subtest's driver and helpers.
type suite struct {
	h      Harness
	d      runtime.Driver
	dir    string
	secret string
}

var seq atomic.Int64

// spec returns a spec for the fake runtime with a fresh id and port.
func (s *suite) spec(t *testing.T, args ...string) runtime.Spec {
	t.Helper()
	return runtime.Spec{
		ID:      fmt.Sprintf("rt%d-%d", os.Getpid(), seq.Add(1)),
		Labels:  map[string]string{"test": t.Name()},
		Port:    testutil.FreePort(t),
		Command: s.h.Command(t, args...),
		Env:     map[string]string{},
		Image:   s.h.Image,
	}
}

// start starts spec on d and destroys the runtime when the test ends.
func (s *suite) start(t *testing.T, d runtime.Driver, spec runtime.Spec) *runtime.Handle {
	t.Helper()
	h, err := d.Start(ctx(t), spec)
	if err != nil {
		t.Fatalf("Start(%s): %v", spec.ID, err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Destroy(c, h); err != nil {
			t.Errorf("cleanup: Destroy(%s): %v", h.ID, err)
		}
	})
	return h
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

var client = &http.Client{Timeout: 5 * time.Second}

// WaitHealthy polls endpoint/health until it answers 200 or timeout passes.
func WaitHealthy(ctx context.Context, endpoint string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	// Start polling fast: the benchmark of start-to-healthy measures this.
	for pause := time.Millisecond; time.Now().Before(deadline); pause = min(2*pause, 20*time.Millisecond) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	return fmt.Errorf("%s not healthy after %v: %w", endpoint, timeout, last)
}

func healthy(t *testing.T, h *runtime.Handle) {
	t.Helper()
	if err := WaitHealthy(ctx(t), h.Endpoint, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// Env returns the runtime's environment, as the fake runtime reports it.
func Env(t *testing.T, h *runtime.Handle) map[string]string {
	t.Helper()
	env := map[string]string{}
	getJSON(t, h.Endpoint+"/env", &env)
	return env
}

func starts(t *testing.T, h *runtime.Handle) int {
	t.Helper()
	var v struct{ Starts int }
	getJSON(t, h.Endpoint+"/starts", &v)
	return v.Starts
}

func inspect(t *testing.T, d runtime.Driver, h *runtime.Handle) runtime.Status {
	t.Helper()
	st, err := d.Inspect(ctx(t), h)
	if err != nil {
		t.Fatalf("Inspect(%s): %v", h.ID, err)
	}
	return st
}

func wait(t *testing.T, d runtime.Driver, h *runtime.Handle) runtime.ExitResult {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := d.Wait(c, h)
	if err != nil {
		t.Fatalf("Wait(%s): %v", h.ID, err)
	}
	return res
}

func stop(t *testing.T, d runtime.Driver, h *runtime.Handle, timeout time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	if err := d.Stop(ctx(t), h, timeout); err != nil {
		t.Fatalf("Stop(%s): %v", h.ID, err)
	}
	return time.Since(begin)
}

// roundTrip persists h as the platform does and reads it back.
func roundTrip(t *testing.T, h *runtime.Handle) *runtime.Handle {
	t.Helper()
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var out runtime.Handle
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func hasLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("%s: err = %v, want ErrNotFound", what, err)
	}
}
