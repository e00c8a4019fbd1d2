package obs

import (
	"context"
	"log/slog"
	"sync"

	"github.com/agenthost/agenthost/internal/ids"
)

// RequestIDHeader carries a request's id in both directions.
const RequestIDHeader = "X-Request-Id"

// MaxRequestIDLen bounds an id accepted from a caller.
const MaxRequestIDLen = 128

// ValidRequestID reports whether a caller's X-Request-Id may be kept:
// 1 to MaxRequestIDLen characters among letters, digits and "-_.:/+=@",
// so that it cannot forge log lines or headers. Others are replaced by a
// fresh id.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '/', c == '+', c == '=', c == '@':
		default:
			return false
		}
	}
	return true
}

// NewRequestID returns a fresh request id ("req_" and 24 hex digits).
func NewRequestID() string { return ids.Hex("req_") }

// request is what the middleware keeps about one request; handlers reach
// it through the context to name their route or add to the access log.
type request struct {
	id string

	mu    sync.Mutex
	route string
	attrs []slog.Attr
}

type reqKey struct{}

func withRequest(ctx context.Context, rq *request) context.Context {
	return context.WithValue(ctx, reqKey{}, rq)
}

func requestOf(ctx context.Context) *request {
	rq, _ := ctx.Value(reqKey{}).(*request)
	return rq
}

// RequestID returns the id of the request ctx belongs to ("" outside
// one).
func RequestID(ctx context.Context) string {
	if rq := requestOf(ctx); rq != nil {
		return rq.id
	}
	return ""
}

// WithRequestID returns ctx carrying id as its request id, for work that
// outlives its request or starts outside one.
func WithRequestID(ctx context.Context, id string) context.Context {
	return withRequest(ctx, &request{id: id})
}

// SetRoute names the route pattern of the request ctx belongs to, for the
// metrics and the span, when the handler that matched it sits behind a
// mux of its own (the outer middleware sees only the outer pattern).
func SetRoute(ctx context.Context, pattern string) {
	if rq := requestOf(ctx); rq != nil && pattern != "" {
		rq.mu.Lock()
		rq.route = pattern
		rq.mu.Unlock()
	}
}

// AddLogAttrs adds attributes to the access log line of the request ctx
// belongs to (the platform adds the organisation).
func AddLogAttrs(ctx context.Context, attrs ...slog.Attr) {
	if rq := requestOf(ctx); rq != nil {
		rq.mu.Lock()
		rq.attrs = append(rq.attrs, attrs...)
		rq.mu.Unlock()
	}
}
