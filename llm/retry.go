package llm

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// RetryAfter reads how long a provider asks to wait before retrying, from
// Retry-After-Ms (OpenAI, Anthropic) or Retry-After (seconds or an HTTP
// date). It is 0 when the response names no delay, never negative, and
// saturates instead of overflowing on absurd values.
func RetryAfter(h http.Header) time.Duration {
	if d, ok := retryNumber(h.Get("Retry-After-Ms"), time.Millisecond); ok {
		return d
	}
	v := h.Get("Retry-After")
	if d, ok := retryNumber(v, time.Second); ok {
		return d
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// retryNumber parses a non-negative count of units, saturating instead of
// overflowing.
func retryNumber(v string, unit time.Duration) (time.Duration, bool) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	switch {
	case f <= 0:
		return 0, true
	case f >= float64(math.MaxInt64)/float64(unit):
		return math.MaxInt64, true
	}
	return time.Duration(f * float64(unit)), true
}
