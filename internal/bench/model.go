package bench

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/agenthost/agenthost/llm"
)

// StampModel streams Chunks chunks, each carrying the time it was produced
// ("<unixnano> "), so a client can measure model-chunk-to-client latency.
// Delay paces the chunks; zero streams as fast as the host takes them.
type StampModel struct {
	Chunks int
	Delay  time.Duration
}

// Name implements llm.Model.
func (m StampModel) Name() string { return "bench/stamp" }

// Generate implements llm.Model.
func (m StampModel) Generate(ctx context.Context, _ *llm.Request, onDelta func(llm.Delta)) (*llm.Response, error) {
	var all strings.Builder
	for i := 0; i < m.Chunks; i++ {
		if m.Delay > 0 {
			t := time.NewTimer(m.Delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c := strconv.FormatInt(time.Now().UnixNano(), 10) + " "
		all.WriteString(c)
		if onDelta != nil {
			onDelta(llm.Delta{Text: c})
		}
	}
	return &llm.Response{Message: llm.Message{Role: llm.RoleAssistant, Parts: []llm.Part{llm.TextPart(all.String())}},
		StopReason: "stop"}, nil
}

// ChunkLatency parses a stamped chunk and returns how long ago it was
// produced.
func ChunkLatency(chunk string, now time.Time) (time.Duration, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(chunk), 10, 64)
	if err != nil {
		return 0, false
	}
	return now.Sub(time.Unix(0, n)), true
}
