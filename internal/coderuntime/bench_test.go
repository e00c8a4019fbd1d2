package coderuntime

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// turnsPerSession is how many messages BenchmarkMessages sends to one
// session before starting another, so histories stay a realistic length.
const turnsPerSession = 20

// BenchmarkMessages measures user messages per second through the control
// API with offline/demo: each message is one turn (a model call, its
// messages and events committed to SQLite), sent by four clients, each to
// a session of its own (a new one every turnsPerSession messages); turns
// of different sessions run concurrently and queue within a session. The
// clock stops when the last turn has ended.
func BenchmarkMessages(b *testing.B) {
	rg := newRig(b, nil)
	ctx := context.Background()
	if _, err := rg.c.Send(ctx, "", "warm up"); err != nil {
		b.Fatal(err)
	}
	rg.waitIdle(b)
	b.SetParallelism(2) // 4 senders on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var sid string
		for i := 0; pb.Next(); i++ {
			if i%turnsPerSession == 0 {
				sid = ""
			}
			res, err := rg.c.Send(ctx, sid, fmt.Sprintf("message %d", i))
			if err != nil {
				b.Error(err)
				return
			}
			sid = res.SessionID
		}
	})
	rg.waitIdle(b)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
