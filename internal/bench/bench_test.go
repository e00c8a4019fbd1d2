package bench_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/bench"
)

func TestRunPrintsTable(t *testing.T) {
	bench.Register(bench.Scenario{Name: "test/fake", Run: func(context.Context, bench.Options) ([]bench.Row, error) {
		return []bench.Row{{Scenario: "test/fake", Metric: "speed", Value: 1234.5, Unit: "op/s"}}, nil
	}})
	var out bytes.Buffer
	if err := bench.Run(context.Background(), &out, "test/", bench.Options{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "SCENARIO") || !strings.Contains(out.String(), "1234") || !strings.Contains(out.String(), "op/s") {
		t.Fatalf("table:\n%s", out.String())
	}
	if err := bench.Run(context.Background(), &out, "no-such", bench.Options{}); err == nil {
		t.Fatal("no error for an unknown filter")
	}
	names := map[string]bool{}
	for _, s := range bench.Scenarios() {
		names[s.Name] = true
	}
	for _, n := range []string{"host/input", "host/ws-stream", "host/ws-idle", "host/health-under-load"} {
		if !names[n] {
			t.Errorf("scenario %s not registered", n)
		}
	}
}

func TestHostScenariosRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the host scenarios")
	}
	var out bytes.Buffer
	err := bench.Run(context.Background(), &out, "host/", bench.Options{Duration: 200 * time.Millisecond, Concurrency: 4, Sessions: 20})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"req/s", "chunks/s", "KiB", "/health p99"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("no %q in:\n%s", want, out.String())
		}
	}
}
