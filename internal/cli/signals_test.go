package cli

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/testutil"
)

// TestServeSignals runs the real binary: the first Ctrl-C says how long
// serve waits and for how many runs (one, held by a slow model), a second
// one stops it at once, long before the grace.
func TestServeSignals(t *testing.T) {
	bin := agenthostBinary(t)
	dir := t.TempDir()
	var out, errb testutil.Buffer
	cmd := exec.Command(bin, "serve", "--port", "0", "--trust", "open", "--shutdown-grace", "1h")
	cmd.Dir = dir
	// The slow offline model (named through --model's variable) waits this
	// long before each chunk it streams: the run stays busy.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "AGENTHOST_MODEL=offline/slow", "AGENTHOST_OFFLINE_DELAY=10m"}
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	m, err := out.WaitMatch(wctx, portRE)
	wcancel()
	if err != nil {
		t.Fatalf("%v: %s %s", err, &out, &errb)
	}
	port := m[1]

	// A run, streamed: its first event means it holds a worker.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://127.0.0.1:"+port+"/input", strings.NewReader(`{"prompt": "hello there"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /input: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data:") {
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, &errb, "shutting down, waiting up to 1h0m0s for 1 run…", &out, &errb)
	select {
	case <-exited:
		t.Fatalf("serve exited after one Ctrl-C with a run going on: %v\n%s", waitErr, &errb)
	default:
	}
	begin := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) || ee.ExitCode() != 130 {
			t.Fatalf("after the second signal: %v, want exit 130\n%s", waitErr, &errb)
		}
		if !strings.Contains(errb.String(), "interrupted again: stopping now") {
			t.Errorf("no word of the second signal: %s", &errb)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve still running %s after the second signal\n%s", time.Since(begin), &errb)
	}
}
