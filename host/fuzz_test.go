package host

import (
	"encoding/json"
	"testing"
)

// FuzzParseConfig: any bytes give a config or an ErrConfig, never a panic.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("summary: hi\nport: 8000\n"))
	f.Add([]byte("trust:\n  allow: [contact]\n"))
	f.Add([]byte("examples: [a, b]\nwhitelist: [\"0x1\"]\n"))
	f.Add([]byte("port: abc\n"))
	f.Add([]byte("system_prompt: |\n  multi\n  line\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, err := parseConfig(data, "host.yaml")
		if err == nil && fc == nil {
			t.Fatal("nil config without error")
		}
	})
}

// FuzzDecodeInput: request decoding never panics, and accepted requests
// have a prompt.
func FuzzDecodeInput(f *testing.F) {
	f.Add([]byte(`{"prompt":"hi"}`))
	f.Add([]byte(`{"prompt":"hi","session":{"messages":[{"role":"user","content":"x"}],"iteration":2}}`))
	f.Add([]byte(`{"payload":{"prompt":"hi","timestamp":1},"from":"0x1","signature":"ab"}`))
	f.Add([]byte(`{"prompt":"x","files":[{"name":"a","data":"data:text/plain;base64,eA=="}],"images":["data:image/png;base64,AA=="]}`))
	f.Add([]byte(`{"prompt": 5}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in inputRequest
		if err := decodeJSON(body, &in); err != nil {
			if _, ok := err.(*httpError); !ok {
				t.Fatalf("error %T is not an httpError", err)
			}
			return
		}
		p, err := in.prompt()
		if err == nil && p == "" {
			t.Fatal("empty prompt accepted")
		}
		cfg := &Config{MaxFileSizeMB: 0.001, MaxFilesPerRequest: 2, CoDir: t.TempDir()}
		attachments(cfg, in.Images, in.Files)
		var f struct{}
		_ = json.Unmarshal(body, &f)
	})
}
