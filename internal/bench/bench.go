// Package bench runs agenthost's performance scenarios in-process and
// prints their figures as a table (`agenthost bench`). Scenarios register
// themselves, so the relay and the platform add their rows beside the
// host's without touching the runner.
package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Row is one measured figure.
type Row struct {
	Scenario string
	Metric   string
	Value    float64
	Unit     string
	// Note says what the figure is compared with or measured over.
	Note string
}

// Options scale the scenarios.
type Options struct {
	// Duration is how long a throughput scenario measures (default 3s).
	Duration time.Duration
	// Concurrency is the number of concurrent clients (default 32).
	Concurrency int
	// Sessions is the number of sessions or connections where a scenario
	// opens many (default 200).
	Sessions int
}

func (o Options) withDefaults() Options {
	if o.Duration <= 0 {
		o.Duration = 3 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.Sessions <= 0 {
		o.Sessions = 200
	}
	return o
}

// Scenario is one benchmark.
type Scenario struct {
	Name        string
	Description string
	Run         func(ctx context.Context, o Options) ([]Row, error)
}

var (
	mu        sync.Mutex
	scenarios []Scenario
)

// Register adds a scenario; packages call it from init.
func Register(s Scenario) {
	mu.Lock()
	defer mu.Unlock()
	if slices.ContainsFunc(scenarios, func(x Scenario) bool { return x.Name == s.Name }) {
		panic("bench: duplicate scenario " + s.Name)
	}
	scenarios = append(scenarios, s)
}

// Scenarios lists the registered scenarios by name.
func Scenarios() []Scenario {
	mu.Lock()
	defer mu.Unlock()
	out := slices.Clone(scenarios)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Run runs the scenarios whose names contain filter (all for "") and
// prints the table to w as results arrive.
func Run(ctx context.Context, w io.Writer, filter string, o Options) error {
	o = o.withDefaults()
	// Fixed columns, so rows line up while scenarios print as they finish.
	const row = "%-24s %-34s %10s %-9s %s\n"
	fmt.Fprintf(w, row, "SCENARIO", "METRIC", "VALUE", "UNIT", "NOTE")
	ran := 0
	var errs []string
	for _, s := range Scenarios() {
		if filter != "" && !strings.Contains(s.Name, filter) {
			continue
		}
		ran++
		rows, err := s.Run(ctx, o)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", s.Name, err))
			fmt.Fprintf(w, row, s.Name, "error", "-", "-", err)
		}
		for _, r := range rows {
			fmt.Fprintf(w, row, r.Scenario, r.Metric, format(r.Value), r.Unit, r.Note)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if ran == 0 {
		return fmt.Errorf("no scenario matches %q", filter)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d scenario(s) failed: %s", len(errs), strings.Join(errs, "; "))
	}
	return nil
}

func format(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// Percentile returns the p-th percentile (0–100) of ds, sorting ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

// CPUTime is the CPU time (user and system) this process used so far. On
// a machine shared with other work, CPU per operation varies far less than
// throughput or latency.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func perOp(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(d) / float64(n) / float64(time.Microsecond)
}

// Millis is d in milliseconds.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
