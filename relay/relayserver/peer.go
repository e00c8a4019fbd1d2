package relayserver

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// peer is one WebSocket connection's outbound side: a bounded queue drained
// by its own writer goroutine, so that no reader ever blocks on another
// peer's socket. When the queue is full the frame is refused and the caller
// decides whom to drop.
type peer struct {
	ws           *websocket.Conn
	q            chan outFrame
	queued       atomic.Int64 // bytes in q
	maxFrames    int
	maxBytes     int64
	writeTimeout time.Duration

	lastActive atomic.Int64 // unix nanoseconds of the last frame either way

	closeOnce   sync.Once
	closing     chan struct{} // closed when the peer should flush and close
	closeCode   websocket.StatusCode
	closeReason string
	done        chan struct{} // closed when the writer has finished
	slow        atomic.Bool   // the writer gave up on a write that timed out

	// A sender that finds the queue full waits while the writer makes
	// progress (flow control: the sender's own socket stops being read, so
	// TCP slows whoever feeds it) and gives up after stall without any.
	stall   time.Duration
	waiting atomic.Int32  // senders waiting for room
	drainMu sync.Mutex    // guards drained
	drained chan struct{} // closed and replaced when a frame leaves a queue someone waits on
}

// outFrame is a queued frame. A forwarded one carries its arrival time
// and the histogram that times its way through the relay.
type outFrame struct {
	b       []byte
	arrived time.Time
	timer   prometheus.Observer
}

// controlHeadroom is queue space kept for control frames (ERROR, close) so
// that a peer whose data queue is full can still be told why it is being
// dropped, or that a session ended.
const controlHeadroom = 32

func newPeer(ws *websocket.Conn, cfg *Config, now time.Time) *peer {
	p := &peer{
		ws:           ws,
		q:            make(chan outFrame, cfg.SendQueueFrames+controlHeadroom),
		maxFrames:    cfg.SendQueueFrames,
		maxBytes:     cfg.SendQueueBytes,
		writeTimeout: cfg.WriteTimeout,
		stall:        cfg.StallTimeout,
		drained:      make(chan struct{}),
		closing:      make(chan struct{}),
		done:         make(chan struct{}),
	}
	p.touch(now)
	return p
}

func (p *peer) touch(now time.Time) { p.lastActive.Store(now.UnixNano()) }

func (p *peer) idleSince() time.Time { return time.Unix(0, p.lastActive.Load()) }

// send queues a data frame that arrived at the relay at arrived; once
// written, the time since then goes to timer. When the queue is at its
// frame or byte bound, send waits for room as long as the writer keeps
// taking frames off it: a peer that reads as fast as it can is never
// dropped for being a little slower than whoever feeds it, and the
// caller's own reads stop meanwhile, which slows that sender. send reports
// false when the writer took nothing for the stall timeout (the peer is not
// keeping up), or the peer is closing or gone.
func (p *peer) send(frame []byte, arrived time.Time, timer prometheus.Observer) bool {
	if p.tryQueue(frame, arrived, timer) {
		return true
	}
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if p.isClosing() {
			return false
		}
		// Announce the wait before looking again, so that a frame the
		// writer takes after the look wakes this sender.
		p.waiting.Add(1)
		p.drainMu.Lock()
		drained := p.drained
		p.drainMu.Unlock()
		if p.tryQueue(frame, arrived, timer) {
			p.waiting.Add(-1)
			return true
		}
		if t == nil {
			t = time.NewTimer(p.stall)
		} else {
			t.Reset(p.stall)
		}
		select {
		case <-drained: // progress: look again, with a fresh stall timeout
			p.waiting.Add(-1)
			continue
		case <-t.C:
		case <-p.closing:
		case <-p.done:
		}
		p.waiting.Add(-1)
		return false
	}
}

// tryQueue queues a data frame if the queue is under its bounds and the
// peer is not closing.
func (p *peer) tryQueue(frame []byte, arrived time.Time, timer prometheus.Observer) bool {
	if p.isClosing() {
		return false
	}
	n := int64(len(frame))
	if len(p.q) >= p.maxFrames || p.queued.Load()+n > p.maxBytes && p.queued.Load() > 0 {
		return false
	}
	p.queued.Add(n)
	select {
	case p.q <- outFrame{b: frame, arrived: arrived, timer: timer}:
		return true
	default:
		p.queued.Add(-n)
		return false
	}
}

// sendControl queues a small control frame, using the headroom data frames
// may not. It reports false only when even that is exhausted.
func (p *peer) sendControl(frame []byte) bool {
	if p.isClosing() {
		return false
	}
	p.queued.Add(int64(len(frame)))
	select {
	case p.q <- outFrame{b: frame}:
		return true
	default:
		p.queued.Add(-int64(len(frame)))
		return false
	}
}

func (p *peer) isClosing() bool {
	select {
	case <-p.closing:
		return true
	default:
		return false
	}
}

// close asks the writer to send what is queued, then close the socket
// with code and reason. The first call wins.
func (p *peer) close(code websocket.StatusCode, reason string) {
	p.closeOnce.Do(func() {
		p.closeCode, p.closeReason = code, reason
		close(p.closing)
	})
}

// fail queues an ERROR frame carrying msg and closes after it.
func (p *peer) fail(frame []byte, code websocket.StatusCode, reason string) {
	p.sendControl(frame)
	p.close(code, reason)
}

// kill drops the connection at once, without flushing.
func (p *peer) kill() {
	p.close(websocket.StatusPolicyViolation, "")
	p.ws.CloseNow()
}

// writeLoop drains the queue until the peer closes or ctx (the server's
// lifetime) ends. It is the only writer of data frames on the socket.
func (p *peer) writeLoop(ctx context.Context) {
	defer close(p.done)
	for {
		select {
		case f := <-p.q:
			if !p.write(ctx, f) {
				return
			}
		case <-p.closing:
			for {
				select {
				case f := <-p.q:
					if !p.write(ctx, f) {
						return
					}
					continue
				default:
				}
				break
			}
			if p.closeReason == "" && p.closeCode == websocket.StatusPolicyViolation {
				p.ws.CloseNow()
			} else {
				p.ws.Close(p.closeCode, p.closeReason)
			}
			return
		case <-ctx.Done():
			p.ws.CloseNow()
			return
		}
	}
}

func (p *peer) write(ctx context.Context, f outFrame) bool {
	p.queued.Add(-int64(len(f.b)))
	if p.waiting.Load() > 0 {
		p.drainMu.Lock()
		close(p.drained)
		p.drained = make(chan struct{})
		p.drainMu.Unlock()
	}
	wctx, cancel := context.WithTimeout(ctx, p.writeTimeout)
	err := p.ws.Write(wctx, websocket.MessageText, f.b)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || wctx.Err() != nil && ctx.Err() == nil {
			p.slow.Store(true)
		}
		p.ws.CloseNow()
		return false
	}
	if f.timer != nil {
		f.timer.Observe(time.Since(f.arrived).Seconds())
	}
	return true
}
