package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/bench"
	"github.com/agenthost/agenthost/internal/store/sqlite"
	"github.com/agenthost/agenthost/trust"
)

// BenchmarkTrustInput is the cost of trust: POST /input per second through
// the default trust gate (careful), unsigned beside signed requests that
// are verified (signature, window, recipient) and recorded in the SQLite
// replay ledger. Bodies are signed before the timer starts, one per
// request, since each signature is single use.
func BenchmarkTrustInput(b *testing.B) {
	h, err := bench.StartHost(func() (*agent.Agent, error) { return agent.New("bench") }, host.WithWorkers(32), host.WithTrust("careful"))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	caller, err := trust.NewIdentity()
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, body func(i int) []byte) {
		bodies := make([][]byte, b.N)
		for i := range bodies {
			bodies[i] = body(i)
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		var next atomic.Int64
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1) - 1
				resp, err := client.Post(h.URL+"/input", "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("unsigned", func(b *testing.B) {
		run(b, func(i int) []byte { return []byte(`{"prompt":"Translate hello to Spanish ` + strconv.Itoa(i) + `"}`) })
	})
	b.Run("signed", func(b *testing.B) {
		now := time.Now()
		run(b, func(i int) []byte {
			env, err := trust.Sign(caller, trust.NewPayload(h.Server.Address(), now, map[string]any{"prompt": "Translate hello to Spanish " + strconv.Itoa(i) + "/" + strconv.Itoa(b.N)}))
			if err != nil {
				b.Fatal(err)
			}
			js, _ := json.Marshal(env)
			return js
		})
	})
}

// BenchmarkTrustGate is the gate alone, without HTTP or the agent run: an
// unsigned request beside a signed one verified and recorded in the SQLite
// replay ledger.
func BenchmarkTrustGate(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), sqlite.FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	self, _ := trust.NewIdentity()
	caller, _ := trust.NewIdentity()
	g, err := host.NewTrustGate(host.GateEnvWithStore(host.GateEnv{Config: &host.Config{Trust: host.TrustCareful}, Identity: self, Logger: quietLogger()}, st))
	if err != nil {
		b.Fatal(err)
	}
	admit := func(b *testing.B, reqs []*host.Request) {
		var next atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := reqs[next.Add(1)-1]
				if _, err := g.Admit(context.Background(), r); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("unsigned", func(b *testing.B) {
		reqs := make([]*host.Request, b.N)
		for i := range reqs {
			reqs[i] = &host.Request{Transport: "http", Method: "POST", Path: "/input", Body: []byte(`{"prompt":"hi"}`)}
		}
		admit(b, reqs)
	})
	b.Run("signed", func(b *testing.B) {
		reqs := make([]*host.Request, b.N)
		now := time.Now()
		for i := range reqs {
			env, _ := trust.Sign(caller, trust.NewPayload(self.Address(), now, map[string]any{"prompt": "hi " + strconv.Itoa(i) + "/" + strconv.Itoa(b.N)}))
			js, _ := json.Marshal(env)
			reqs[i] = &host.Request{Transport: "http", Method: "POST", Path: "/input", Body: js, From: env.From, Signature: env.Signature}
		}
		admit(b, reqs)
	})
}
