package llm_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/agenthost/agenthost/llm"
)

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"none", http.Header{}, 0},
		{"seconds", http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{"fractional seconds", http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{"milliseconds win", http.Header{"Retry-After": {"2"}, "Retry-After-Ms": {"150"}}, 150 * time.Millisecond},
		{"past date", http.Header{"Retry-After": {"Mon, 02 Jan 2006 15:04:05 GMT"}}, 0},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"negative", http.Header{"Retry-After": {"-3"}}, 0},
		{"huge", http.Header{"Retry-After": {"1e300"}}, time.Duration(1<<63 - 1)},
	}
	for _, tc := range tests {
		if got := llm.RetryAfter(tc.h); got != tc.want {
			t.Errorf("%s: retryAfter = %v, want %v", tc.name, got, tc.want)
		}
	}
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	if got := llm.RetryAfter(http.Header{"Retry-After": {future}}); got < 59*time.Minute || got > time.Hour {
		t.Errorf("date an hour ahead: %v", got)
	}
}

// FuzzRetryAfter: any header value parses without panicking to a
// non-negative delay.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "0.25", "-1", "1e309", "NaN", "Inf", "Mon, 02 Jan 2006 15:04:05 GMT", ""} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, ra, ms string) {
		h := http.Header{}
		h.Set("Retry-After", ra)
		h.Set("Retry-After-Ms", ms)
		if d := llm.RetryAfter(h); d < 0 {
			t.Errorf("llm.RetryAfter(%q, %q) = %v", ra, ms, d)
		}
	})
}
