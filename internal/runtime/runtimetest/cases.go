package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/testutil"
)

func testStartServesHTTP(t *testing.T, s *suite) {
	before := time.Now()
	spec := s.spec(t)
	h := s.start(t, s.d, spec)
	if h.ID != spec.ID || h.Driver != s.d.Name() || h.Endpoint == "" {
		t.Fatalf("handle = %+v, want id %s, driver %s and an endpoint", h, spec.ID, s.d.Name())
	}
	healthy(t, h)
	st := inspect(t, s.d, h)
	if st.State != runtime.StateRunning {
		t.Errorf("State = %s, want running", st.State)
	}
	if st.StartedAt.Before(before.Add(-time.Second)) || st.StartedAt.After(time.Now()) {
		t.Errorf("StartedAt = %v, want between %v and now", st.StartedAt, before)
	}
}

func testEnvironment(t *testing.T, s *suite) {
	a, b := s.spec(t), s.spec(t)
	a.Env = map[string]string{"ANTHROPIC_API_KEY": "sk-a", "AGENT_SETTING": "with spaces = and \"quotes\""}
	b.Env = map[string]string{"OPENAI_API_KEY": "sk-b"}
	ha, hb := s.start(t, s.d, a), s.start(t, s.d, b)
	healthy(t, ha)
	healthy(t, hb)
	envA, envB := Env(t, ha), Env(t, hb)

	for k, v := range a.Env {
		if envA[k] != v {
			t.Errorf("runtime a: %s = %q, want %q", k, envA[k], v)
		}
	}
	if envA["AGENTHOST_RUNTIME_ID"] != a.ID {
		t.Errorf("AGENTHOST_RUNTIME_ID = %q, want %q", envA["AGENTHOST_RUNTIME_ID"], a.ID)
	}
	if envA["AGENTHOST_WORKSPACE"] == "" || envA["AGENTHOST_PORT"] == "" {
		t.Errorf("AGENTHOST_WORKSPACE = %q, AGENTHOST_PORT = %q: want both set", envA["AGENTHOST_WORKSPACE"], envA["AGENTHOST_PORT"])
	}
	if _, ok := envB["ANTHROPIC_API_KEY"]; ok {
		t.Error("runtime b sees runtime a's secret")
	}
	if envB["OPENAI_API_KEY"] != "sk-b" {
		t.Errorf("runtime b: OPENAI_API_KEY = %q", envB["OPENAI_API_KEY"])
	}
	for name, env := range map[string]map[string]string{"a": envA, "b": envB} {
		for k, v := range env {
			if k == platformSecretVar || strings.Contains(v, s.secret) {
				t.Errorf("runtime %s sees the platform's environment: %s", name, k)
			}
		}
	}
}

func testWorkspacePersists(t *testing.T, s *suite) {
	spec := s.spec(t)
	h := s.start(t, s.d, spec)
	healthy(t, h)
	if n := starts(t, h); n != 1 {
		t.Fatalf("starts = %d, want 1", n)
	}
	stop(t, s.d, h, 3*time.Second)

	h2 := s.start(t, s.d, spec)
	healthy(t, h2)
	if n := starts(t, h2); n != 2 {
		t.Fatalf("after stop and start: starts = %d, want 2 (workspace kept)", n)
	}
	if err := s.d.Destroy(ctx(t), h2); err != nil {
		t.Fatal(err)
	}

	h3 := s.start(t, s.d, spec)
	healthy(t, h3)
	if n := starts(t, h3); n != 1 {
		t.Fatalf("after destroy and start: starts = %d, want 1 (workspace removed)", n)
	}
}

func testGracefulStop(t *testing.T, s *suite) {
	h := s.start(t, s.d, s.spec(t))
	healthy(t, h)
	if took := stop(t, s.d, h, 10*time.Second); took > 5*time.Second {
		t.Errorf("Stop took %v for a runtime that exits on SIGTERM", took)
	}
	if res := wait(t, s.d, h); res.ExitCode != 0 || res.Err != nil {
		t.Errorf("Wait = %+v, want exit code 0", res)
	}
	st := inspect(t, s.d, h)
	if st.State != runtime.StateExited || st.ExitCode != 0 || st.ExitedAt.Before(st.StartedAt) {
		t.Errorf("Inspect = %s code %d exited %v (started %v), want exited 0", st.State, st.ExitCode, st.ExitedAt, st.StartedAt)
	}
	if !hasLine(st.Logs, "SIGTERM, shutting down") {
		t.Errorf("logs lack the runtime's goodbye: %q", st.Logs)
	}
	// Stopping again is a no-op.
	stop(t, s.d, h, time.Second)
}

func testStopKillsAfterTimeout(t *testing.T, s *suite) {
	h := s.start(t, s.d, s.spec(t, "-ignore-term"))
	healthy(t, h)
	const grace = 700 * time.Millisecond
	took := stop(t, s.d, h, grace)
	if took < grace || took > grace+10*time.Second {
		t.Errorf("Stop took %v, want the %v grace and then a kill", took, grace)
	}
	if res := wait(t, s.d, h); res.ExitCode != 137 {
		t.Errorf("Wait = %+v, want 137 (SIGKILL)", res)
	}
	st := inspect(t, s.d, h)
	if st.State != runtime.StateExited || st.ExitCode != 137 {
		t.Errorf("Inspect = %s %d, want exited 137", st.State, st.ExitCode)
	}
	if !hasLine(st.Logs, "ignoring SIGTERM") {
		t.Errorf("logs = %q, want the runtime's note that it ignored SIGTERM", st.Logs)
	}
}

func testStopAtOnce(t *testing.T, s *suite) {
	h := s.start(t, s.d, s.spec(t))
	healthy(t, h)
	stop(t, s.d, h, 0)
	if res := wait(t, s.d, h); res.ExitCode != 137 {
		t.Errorf("Stop with no timeout: Wait = %+v, want 137 (SIGKILL, no grace)", res)
	}
}

func testWaitExitCode(t *testing.T, s *suite) {
	for _, code := range []int{0, 3, 42} {
		h := s.start(t, s.d, s.spec(t, "-exit-code", strconv.Itoa(code), "-exit-after", "200ms"))
		res := wait(t, s.d, h)
		if res.ExitCode != code || res.Err != nil {
			t.Errorf("exit %d: Wait = %+v", code, res)
		}
		st := inspect(t, s.d, h)
		if st.State != runtime.StateExited || st.ExitCode != code || st.ExitedAt.IsZero() {
			t.Errorf("exit %d: Inspect = %s %d at %v", code, st.State, st.ExitCode, st.ExitedAt)
		}
		if !hasLine(st.Logs, "exiting with code "+strconv.Itoa(code)) {
			t.Errorf("exit %d: logs = %q", code, st.Logs)
		}
	}
}

func testWaitContext(t *testing.T, s *suite) {
	h := s.start(t, s.d, s.spec(t))
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.d.Wait(c, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait on a running runtime with an expiring context: err = %v", err)
	}
	if st := inspect(t, s.d, h); st.State != runtime.StateRunning {
		t.Errorf("State = %s after an abandoned Wait, want running", st.State)
	}
}

func testInspectLogs(t *testing.T, s *suite) {
	h := s.start(t, s.d, s.spec(t))
	healthy(t, h)
	testutil.Eventually(t, 20*time.Second, "stdout and stderr in the logs", func() bool {
		logs := inspect(t, s.d, h).Logs
		return hasLine(logs, "hello on stdout") && hasLine(logs, "hello on stderr")
	})
}

func testDestroy(t *testing.T, s *suite) {
	h := s.start(t, s.d, s.spec(t))
	healthy(t, h)
	if err := s.d.Destroy(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	if err := WaitHealthy(ctx(t), h.Endpoint, 100*time.Millisecond); err == nil {
		t.Error("runtime still answers after Destroy")
	}
	if st := inspect(t, s.d, h); st.State != runtime.StateUnknown {
		t.Errorf("Inspect after Destroy = %s, want unknown", st.State)
	}
	_, err := s.d.Wait(ctx(t), h)
	wantNotFound(t, "Wait after Destroy", err)
	wantNotFound(t, "Recover after Destroy", s.d.Recover(ctx(t), h))
	if err := s.d.Stop(ctx(t), h, time.Second); err != nil {
		t.Errorf("Stop after Destroy: %v", err)
	}
	if err := s.d.Destroy(ctx(t), h); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

func testStartWhileRunning(t *testing.T, s *suite) {
	spec := s.spec(t)
	h := s.start(t, s.d, spec)
	healthy(t, h)
	if h2, err := s.d.Start(ctx(t), spec); err == nil {
		t.Errorf("second Start of a running runtime succeeded: %+v", h2)
	}
	if n := starts(t, h); n != 1 {
		t.Errorf("starts = %d, want 1", n)
	}
	stop(t, s.d, h, 3*time.Second)
	h3 := s.start(t, s.d, spec)
	healthy(t, h3)
}

// testRecover plays a platform restart: a second driver over the same
// state re-attaches from a handle that went through JSON.
func testRecover(t *testing.T, s *suite) {
	spec := s.spec(t)
	h := s.start(t, s.d, spec)
	healthy(t, h)

	d2 := s.h.New(t, s.dir)
	h2 := roundTrip(t, h)
	if err := d2.Recover(ctx(t), h2); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if err := d2.Recover(ctx(t), h2); err != nil {
		t.Fatalf("second Recover: %v", err)
	}
	if st := inspect(t, d2, h2); st.State != runtime.StateRunning || st.StartedAt.IsZero() {
		t.Fatalf("Inspect after Recover = %s started %v, want running", st.State, st.StartedAt)
	}
	healthy(t, h2)

	stop(t, d2, h2, 10*time.Second)
	res := wait(t, d2, h2)
	if res.ExitCode != 0 && res.ExitCode != -1 {
		t.Errorf("Wait after a graceful stop of a recovered runtime = %+v, want 0 (or -1: unknown)", res)
	}
	if st := inspect(t, d2, h2); st.State != runtime.StateExited {
		t.Errorf("Inspect after Stop = %s, want exited", st.State)
	}

	// The recovering driver can start it again, on the same workspace.
	h3 := s.start(t, d2, spec)
	healthy(t, h3)
	if n := starts(t, h3); n != 2 {
		t.Errorf("starts = %d, want 2", n)
	}
}

func testRecoverGone(t *testing.T, s *suite) {
	h := s.start(t, s.d, s.spec(t))
	healthy(t, h)
	stop(t, s.d, h, 3*time.Second)

	d2 := s.h.New(t, s.dir)
	h2 := roundTrip(t, h)
	wantNotFound(t, "Recover of a stopped runtime", d2.Recover(ctx(t), h2))
	if st := inspect(t, d2, h2); st.State != runtime.StateUnknown {
		t.Errorf("Inspect = %s, want unknown", st.State)
	}
	_, err := d2.Wait(ctx(t), h2)
	wantNotFound(t, "Wait", err)
	if err := d2.Stop(ctx(t), h2, time.Second); err != nil {
		t.Errorf("Stop of a gone runtime: %v", err)
	}
}

func testRecoverThenExit(t *testing.T, s *suite) {
	h := s.start(t, s.d, s.spec(t, "-exit-code", "5", "-exit-after", "1500ms"))
	healthy(t, h)
	d2 := s.h.New(t, s.dir)
	h2 := roundTrip(t, h)
	if err := d2.Recover(ctx(t), h2); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	res := wait(t, d2, h2)
	if res.ExitCode != 5 && res.ExitCode != -1 {
		t.Errorf("Wait = %+v, want 5 (or -1: unknown)", res)
	}
	st := inspect(t, d2, h2)
	if st.State != runtime.StateExited && st.State != runtime.StateUnknown {
		t.Errorf("Inspect = %s, want exited", st.State)
	}
}

func testConcurrent(t *testing.T, s *suite) {
	const n = 4
	specs := make([]runtime.Spec, n)
	for i := range specs {
		specs[i] = s.spec(t)
	}
	handles := make([]*runtime.Handle, n)
	var wg sync.WaitGroup
	for i := range specs {
		wg.Go(func() {
			h, err := s.d.Start(ctx(t), specs[i])
			if err != nil {
				t.Errorf("Start: %v", err)
				return
			}
			handles[i] = h
			if err := WaitHealthy(ctx(t), h.Endpoint, 20*time.Second); err != nil {
				t.Error(err)
			}
			for range 5 {
				if _, err := s.d.Inspect(ctx(t), h); err != nil {
					t.Errorf("Inspect: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for _, h := range handles {
		if h == nil {
			continue
		}
		wg.Go(func() {
			if err := s.d.Destroy(ctx(t), h); err != nil {
				t.Errorf("Destroy: %v", err)
			}
			if st := inspect(t, s.d, h); st.State != runtime.StateUnknown {
				t.Errorf("Inspect after Destroy = %s", st.State)
			}
		})
	}
	wg.Wait()
}

// probe asks a fake runtime to act on its own behalf (read a file, signal
// a process), as a hostile tool in that runtime would; it returns the
// answer's status and body.
func probe(t *testing.T, h *runtime.Handle, path string, q url.Values) (int, string) {
	t.Helper()
	resp, err := client.Get(h.Endpoint + path + "?" + q.Encode())
	if err != nil {
		t.Fatalf("GET %s%s: %v", h.Endpoint, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testIsolation: one runtime reads neither another's workspace nor its
// environment, and cannot signal it or the platform.
func testIsolation(t *testing.T, s *suite) {
	if s.h.NotIsolated != "" {
		t.Skip(s.h.NotIsolated)
	}
	a, b := s.spec(t), s.spec(t)
	secret := "secret-of-b-" + b.ID
	b.Env = map[string]string{"ORG_B_TOKEN": secret}
	ha, hb := s.start(t, s.d, a), s.start(t, s.d, b)
	healthy(t, ha)
	healthy(t, hb)
	envB := Env(t, hb)
	var idB struct{ PID int }
	getJSON(t, hb.Endpoint+"/id", &idB)
	canary := path.Join(envB["AGENTHOST_WORKSPACE"], "canary.txt")
	if code, body := probe(t, ha, "/read", url.Values{"path": {canary}}); code == http.StatusOK && body == b.ID {
		t.Errorf("runtime a read runtime b's workspace (%s)", canary)
	}
	for _, p := range []string{fmt.Sprintf("/proc/%d/environ", idB.PID), fmt.Sprintf("/proc/%d/environ", os.Getpid())} {
		if code, body := probe(t, ha, "/read", url.Values{"path": {p}}); code == http.StatusOK && (strings.Contains(body, secret) || strings.Contains(body, s.secret)) {
			t.Errorf("runtime a read a secret in %s", p)
		}
	}
	if code, _ := probe(t, ha, "/signal", url.Values{"pid": {strconv.Itoa(os.Getpid())}}); code == http.StatusOK {
		t.Errorf("runtime a may signal the platform (pid %d)", os.Getpid())
	}
	// The control: a runtime still reads its own workspace.
	envA := Env(t, ha)
	own := path.Join(envA["AGENTHOST_WORKSPACE"], "canary.txt")
	if code, body := probe(t, ha, "/read", url.Values{"path": {own}}); code != http.StatusOK || body != a.ID {
		t.Errorf("runtime a cannot read its own workspace: %d %q", code, body)
	}
}

// testMemoryLimit: a runtime over its memory limit is killed, its exit
// says so (runtime.ErrMemoryLimit, with the limit in the text), and a
// runtime beside it is unaffected.
func testMemoryLimit(t *testing.T, s *suite) {
	hog, calm := s.spec(t), s.spec(t)
	hog.Resources.MemoryBytes = 96 << 20
	hh, hc := s.start(t, s.d, hog), s.start(t, s.d, calm)
	healthy(t, hh)
	healthy(t, hc)
	// The answer is lost with the runtime.
	if resp, err := client.Get(hh.Endpoint + "/alloc?mb=1024"); err == nil {
		resp.Body.Close()
	}
	res := wait(t, s.d, hh)
	if res.ExitCode != 137 || !errors.Is(res.Err, runtime.ErrMemoryLimit) || !strings.Contains(res.Err.Error(), "96 MiB") {
		t.Errorf("Wait = %+v, want 137 and an error matching runtime.ErrMemoryLimit that names 96 MiB", res)
	}
	healthy(t, hc)
	if st := inspect(t, s.d, hc); st.State != runtime.StateRunning {
		t.Errorf("the other runtime is %s", st.State)
	}
}

// testPidsLimit: a runtime cannot start more processes than its limit.
func testPidsLimit(t *testing.T, s *suite) {
	spec := s.spec(t)
	spec.Resources.PidsLimit = 64
	h := s.start(t, s.d, spec)
	healthy(t, h)
	var v struct {
		Started int
		Error   string
	}
	getJSON(t, h.Endpoint+"/fork?n=200", &v)
	if v.Started >= 64 || v.Error == "" {
		t.Errorf("/fork = %+v, want fewer than 64 processes started and an error", v)
	}
	healthy(t, h)
}
