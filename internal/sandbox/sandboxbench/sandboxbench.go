// Package sandboxbench is the `agenthost bench` scenario for the tools'
// sandbox: what a bash call pays for running inside it, beside the same
// command run plainly in the same run.
package sandboxbench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/agenthost/agenthost/internal/bench"
	"github.com/agenthost/agenthost/internal/sandbox"
)

const name = "sandbox/bash"

func init() {
	bench.Register(bench.Scenario{Name: name, Description: "bash -c true plainly, in a warm sandbox and in a fresh one: the sandbox's added cost per bash call (p50)", Run: run})
}

// timeEach runs f until d has passed (at least 5 times) and returns each
// call's latency.
func timeEach(ctx context.Context, d time.Duration, f func(i int) error) ([]time.Duration, error) {
	var lat []time.Duration
	end := time.Now().Add(d)
	for i := 0; i < 5 || time.Now().Before(end); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := f(i); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

func run(ctx context.Context, o bench.Options) ([]bench.Row, error) {
	if err := sandbox.Probe(ctx); err != nil {
		return nil, fmt.Errorf("the sandbox cannot run here: %w", err)
	}
	ws, err := os.MkdirTemp("", "agenthost-bench-sandbox-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(ws)
	m, err := sandbox.New(sandbox.Config{Workspace: ws})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	d := o.Duration / 3

	plain, err := timeEach(ctx, d, func(int) error { return exec.CommandContext(ctx, "bash", "-c", "true").Run() })
	if err != nil {
		return nil, fmt.Errorf("plain bash: %w", err)
	}
	runIn := func(session string) error {
		res, err := m.Run(ctx, session, sandbox.Command{Script: "true"})
		if err == nil && res.Code != 0 {
			err = fmt.Errorf("exit %d", res.Code)
		}
		return err
	}
	if err := runIn("warm"); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	warm, err := timeEach(ctx, d, func(int) error { return runIn("warm") })
	if err != nil {
		return nil, fmt.Errorf("warm sandbox: %w", err)
	}
	fresh, err := timeEach(ctx, d, func(i int) error {
		s := "fresh" + strconv.Itoa(i)
		defer m.CloseSession(s)
		return runIn(s)
	})
	if err != nil {
		return nil, fmt.Errorf("fresh sandbox: %w", err)
	}
	p := func(l []time.Duration) float64 { return bench.Millis(bench.Percentile(l, 50)) }
	base := p(plain)
	return []bench.Row{
		{Scenario: name, Metric: "plain bash -c true p50", Value: base, Unit: "ms", Note: "baseline: fork+exec on the host"},
		{Scenario: name, Metric: "in a warm sandbox p50", Value: p(warm), Unit: "ms", Note: fmt.Sprintf("added %.2f ms per call (the session's sandbox is running)", p(warm)-base)},
		{Scenario: name, Metric: "in a fresh sandbox p50", Value: p(fresh), Unit: "ms", Note: fmt.Sprintf("added %.2f ms: the session's first call starts bwrap", p(fresh)-base)},
	}, nil
}
