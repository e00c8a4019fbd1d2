package trust

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

func readFile(name string) ([]byte, error) { return os.ReadFile(name) }

// BenchmarkVerify compares the cost of a verified signed request with an
// unsigned one: the price of trust per request.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	host, alice := testIdentity(b, 100), testIdentity(b, 1)
	v, _ := NewVerifier(VerifierConfig{Address: host.Address(), Now: func() time.Time { return t0 }, Ledger: nopLedger{}})
	prompt := `"Translate 'hello, how are you today?' to Spanish, s'il vous plaît — 你好"`
	signed := message(b, alice, fmt.Sprintf(`{"prompt":%s,"to":%q,"timestamp":%d}`, prompt, host.Address(), t0.Unix()), FormPython, nil)
	// A JavaScript client sends the payload as it signed it: top level sorted.
	jsForm := message(b, alice, fmt.Sprintf(`{"opts":{"z":1,"a":2},"prompt":%s,"timestamp":%d,"to":%q}`, prompt, t0.Unix(), host.Address()), FormJavaScript, nil)
	unsigned := []byte(fmt.Sprintf(`{"prompt":%s}`, prompt))

	b.Run("unsigned/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req struct {
				Prompt string `json:"prompt"`
			}
			if err := json.Unmarshal(unsigned, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unsigned/Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, unsigned); !errors.Is(err, ErrUnsigned) {
				b.Fatal(err)
			}
		}
	})
	b.Run("signed/python-form", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, signed); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("signed/javascript-form", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, jsForm); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("signed/with-memory-ledger", func(b *testing.B) {
		// A fresh verifier and ledger per batch keeps every message new.
		msgs := make([][]byte, 1000)
		for i := range msgs {
			msgs[i] = message(b, alice, fmt.Sprintf(`{"prompt":%s,"n":%d,"timestamp":%d}`, prompt, i, t0.Unix()), FormPython, nil)
		}
		b.ReportAllocs()
		i := 0
		var lv *Verifier
		for b.Loop() {
			if i%len(msgs) == 0 {
				lv, _ = NewVerifier(VerifierConfig{Address: host.Address(), Now: func() time.Time { return t0 }})
			}
			if _, err := lv.Verify(ctx, msgs[i%len(msgs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("headers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			h := SignHeaders(alice, "GET", "/sessions/abc", v.Address(), t0)
			b.StartTimer()
			if _, err := v.VerifyHeaders(ctx, h, "GET", "/sessions/abc"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
