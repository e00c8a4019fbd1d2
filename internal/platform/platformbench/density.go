package platformbench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/internal/bench"
)

func init() {
	bench.Register(bench.Scenario{Name: "platform/density", Description: "as many idle agents as the machine allows (up to 1000): memory in total and per agent, and the time one of them takes to answer", Run: benchDensity})
}

// Mem is the memory of a set of processes from /proc/<pid>/smaps_rollup,
// in bytes. Rss counts pages shared with other processes (the runtime
// binary's code, which every runtime maps from the same file) in full in
// each; Pss divides them among the processes sharing them, so the Pss of
// all the processes on a machine adds up to the memory they use; Anon is
// memory no other process can share (heap, stacks).
type Mem struct {
	Procs          int
	Rss, Pss, Anon int64
}

func (m *Mem) add(o Mem) {
	m.Procs += o.Procs
	m.Rss += o.Rss
	m.Pss += o.Pss
	m.Anon += o.Anon
}

// ProcMem reads one process's memory.
func ProcMem(pid int) (Mem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	m := Mem{Procs: 1}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "Rss":
			m.Rss = kb << 10
		case "Pss":
			m.Pss = kb << 10
		case "Anonymous":
			m.Anon = kb << 10
		}
	}
	return m, sc.Err()
}

// children maps each pid to its child pids.
func children() map[int][]int {
	out := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the
		// last parenthesis.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			out[ppid] = append(out[ppid], pid)
		}
	}
	return out
}

// TreeMem is the memory of pid and its descendants (a runtime, and the
// sandbox process that may wrap it).
func TreeMem(pid int, kids map[int][]int) Mem {
	var m Mem
	if pm, err := ProcMem(pid); err == nil {
		m.add(pm)
	}
	for _, c := range kids[pid] {
		m.add(TreeMem(c, kids))
	}
	return m
}

// RuntimePID is the pid the process driver recorded for an agent.
func (r *Rig) RuntimePID(ctx context.Context, id string) (int, error) {
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
	return h.State.PID, nil
}

// memAvailable is the kernel's estimate of memory available for new work.
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// densityMax is the most agents the density scenario starts (the rig's
// port range holds 1000).
const densityMax = 1000

func benchDensity(ctx context.Context, o bench.Options) ([]bench.Row, error) {
	r, err := rig()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// The first agent measures what one costs; the scenario then starts as
	// many as fit in half the memory available, up to densityMax.
	avail0 := memAvailable()
	first, _, err := r.Create(ctx, "density-0")
	if err != nil {
		return nil, err
	}
	pid, err := r.RuntimePID(ctx, first)
	if err != nil {
		return nil, err
	}
	one := TreeMem(pid, children())
	target := min(densityMax, o.Sessions*5)
	// What each further agent adds is its private memory (the binary's
	// pages are shared), counted half again for the kernel's share (page
	// tables, sockets) and what a turn allocates.
	if one.Anon > 0 {
		target = min(target, int(memAvailable()/2/(one.Anon*3/2)))
	}
	ids := []string{first}
	var mu sync.Mutex
	var createErr error
	var wg sync.WaitGroup
	next := make(chan int)
	start := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id, _, err := r.Create(ctx, fmt.Sprintf("density-%d", i))
				mu.Lock()
				if err != nil {
					if createErr == nil {
						createErr = err
					}
				} else {
					ids = append(ids, id)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := 1; i < target; i++ {
		mu.Lock()
		stop := createErr != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break feed
		}
		next <- i
	}
	close(next)
	wg.Wait()
	started := time.Since(start)
	n := len(ids)
	if n < 2 {
		return nil, fmt.Errorf("only %d agents started: %v", n, createErr)
	}
	// Let start-up garbage be collected and returned before measuring.
	time.Sleep(3 * time.Second)
	kids := children()
	var rt Mem
	for _, id := range ids {
		pid, err := r.RuntimePID(ctx, id)
		if err != nil {
			return nil, err
		}
		rt.add(TreeMem(pid, kids))
	}
	used := avail0 - memAvailable()
	plat, err := ProcMem(os.Getpid())
	if err != nil {
		return nil, err
	}
	// One message each to a few agents picked at random: the time until
	// the answer is complete (the agent is idle again).
	var answer []time.Duration
	for range min(20, n) {
		id := ids[rand.IntN(n)]
		t0 := time.Now()
		if err := r.Do(ctx, "POST", "/api/v1/agents/"+id+"/messages", map[string]any{"message": "hello"}, nil); err != nil {
			return nil, err
		}
		if err := r.WaitIdle(ctx, id); err != nil {
			return nil, err
		}
		answer = append(answer, time.Since(t0))
	}
	mib := func(v int64) float64 { return float64(v) / (1 << 20) }
	per := func(v int64) float64 { return mib(v) / float64(n) }
	note := fmt.Sprintf("%d runtimes (%d processes), started in %s", n, rt.Procs, started.Round(time.Second))
	if createErr != nil {
		note += "; stopped by: " + createErr.Error()
	}
	total := rt.Pss + plat.Pss
	return []bench.Row{
		{Scenario: "platform/density", Metric: "idle agents", Value: float64(n), Unit: "agents", Note: note},
		{Scenario: "platform/density", Metric: "total memory (PSS)", Value: mib(total), Unit: "MiB", Note: "runtimes + platform process (this one, with the bench client)"},
		{Scenario: "platform/density", Metric: "per agent PSS", Value: per(rt.Pss), Unit: "MiB", Note: "shared binary pages divided among the runtimes"},
		{Scenario: "platform/density", Metric: "per agent private (anon)", Value: per(rt.Anon), Unit: "MiB", Note: "heap and stacks, shared with nobody"},
		{Scenario: "platform/density", Metric: "per agent RSS", Value: per(rt.Rss), Unit: "MiB", Note: "counts the shared binary in every runtime"},
		{Scenario: "platform/density", Metric: "platform process PSS", Value: mib(plat.Pss), Unit: "MiB", Note: ""},
		{Scenario: "platform/density", Metric: "machine memory used per agent", Value: per(used), Unit: "MiB", Note: "drop of MemAvailable (kernel share included; other work on the machine moves it)"},
		{Scenario: "platform/density", Metric: "agents in 15 GiB", Value: float64(15<<30) / (float64(total) / float64(n)), Unit: "agents", Note: "15 GiB / (total PSS / agents)"},
		{Scenario: "platform/density", Metric: "answer, random agent p50", Value: bench.Millis(Percentile(answer, 50)), Unit: "ms", Note: fmt.Sprintf("%d messages, send to idle again", len(answer))},
		{Scenario: "platform/density", Metric: "answer, random agent max", Value: bench.Millis(Percentile(answer, 100)), Unit: "ms", Note: ""},
	}, nil
}
