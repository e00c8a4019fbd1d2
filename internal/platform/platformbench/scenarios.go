package platformbench

import (
	"context"
	"fmt"
	"os"

	"github.com/agenthost/agenthost/internal/bench"
)

func init() {
	bench.Register(bench.Scenario{Name: "platform/provision", Description: "POST /api/v1/agents to RUNNING with the process driver and the real runtime (p50/p99)", Run: benchProvision})
	bench.Register(bench.Scenario{Name: "platform/idle-rss", Description: "resident memory of one idle agent runtime, and agents per GB", Run: benchIdle})
	bench.Register(bench.Scenario{Name: "platform/messages", Description: "messages per second through the platform to runtimes with offline/demo, the turn's end polled and followed on the event stream", Run: benchMessages})
}

// rig starts a rig whose runtimes are this executable (agenthost).
func rig() (*Rig, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return Start(exe)
}

func benchProvision(ctx context.Context, o bench.Options) ([]bench.Row, error) {
	r, err := rig()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	n := 20
	lat, err := r.ProvisionLatencies(ctx, n)
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%d agents, one at a time", n)
	return []bench.Row{
		{Scenario: "platform/provision", Metric: "create to RUNNING p50", Value: bench.Millis(Percentile(lat, 50)), Unit: "ms", Note: note},
		{Scenario: "platform/provision", Metric: "create to RUNNING p99", Value: bench.Millis(Percentile(lat, 99)), Unit: "ms", Note: note},
	}, nil
}

func benchIdle(ctx context.Context, o bench.Options) ([]bench.Row, error) {
	r, err := rig()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := r.IdleRSS(ctx)
	if err != nil {
		return nil, err
	}
	return []bench.Row{
		{Scenario: "platform/idle-rss", Metric: "idle runtime RSS", Value: float64(b) / (1 << 20), Unit: "MiB", Note: "after one offline/demo turn"},
		{Scenario: "platform/idle-rss", Metric: "agents per GB", Value: float64(1<<30) / float64(b), Unit: "agents", Note: "1 GiB / idle RSS"},
	}, nil
}

func benchMessages(ctx context.Context, o bench.Options) ([]bench.Row, error) {
	r, err := rig()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	conc := min(o.Concurrency, 8)
	// The same rig, polled then pushed: each figure beside the other.
	var rows []bench.Row
	for _, follow := range []Follow{Poll, Events} {
		res, err := r.MessageRate(ctx, conc, o.Duration, follow)
		if err != nil {
			return nil, err
		}
		note := fmt.Sprintf("%d agents, send, then the turn's end %s", conc, follow)
		rows = append(rows,
			bench.Row{Scenario: "platform/messages", Metric: fmt.Sprintf("messages answered (%s)", follow), Value: float64(res.Turns) / res.Elapsed.Seconds(), Unit: "msg/s", Note: note},
			bench.Row{Scenario: "platform/messages", Metric: fmt.Sprintf("POST /messages p50 (%s)", follow), Value: bench.Millis(Percentile(res.Accept, 50)), Unit: "ms", Note: "answer of the send"},
			bench.Row{Scenario: "platform/messages", Metric: fmt.Sprintf("send to idle p99 (%s)", follow), Value: bench.Millis(Percentile(res.Latency, 99)), Unit: "ms", Note: "the whole turn"},
		)
	}
	return rows, nil
}
