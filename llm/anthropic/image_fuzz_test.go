package anthropic

import (
	"testing"

	"github.com/agenthost/agenthost/llm"
)

func imageOf(url string) llm.Image { return llm.Image{URL: url} }

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
