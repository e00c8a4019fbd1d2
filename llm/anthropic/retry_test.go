package anthropic

import (
	"net/http"
	"testing"
	"time"

	"github.com/agenthost/agenthost/llm"
)

func imageOf(url string) llm.Image { return llm.Image{URL: url} }

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{}, 0},
		{http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{http.Header{"Retry-After": {"2"}, "Retry-After-Ms": {"150"}}, 150 * time.Millisecond},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{"Retry-After": {"1e300"}}, time.Duration(1<<63 - 1)},
	}
	for _, tc := range tests {
		if got := retryAfter(tc.h); got != tc.want {
			t.Errorf("retryAfter(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

// FuzzImageBlock: any URL maps to a block or an error, without panicking.
func FuzzImageBlock(f *testing.F) {
	for _, s := range []string{"data:image/png;base64,AAAA", "data:,", "data:image/png,raw", "https://x/y.png", "data:;base64,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, url string) {
		b, err := imageBlock(imageOf(url))
		if err == nil && b.OfImage == nil {
			t.Errorf("imageBlock(%q): no image and no error", url)
		}
	})
}
