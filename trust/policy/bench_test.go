package policy

import (
	"context"
	"log/slog"
	"testing"
)

// BenchmarkDecide measures a policy decision for a signed stranger with
// both access lists set.
func BenchmarkDecide(b *testing.B) {
	wl, _ := NewList("whitelist", []string{addrA, "0xcd*"})
	bl, _ := NewList("blacklist", []string{addrC, "0xdead*"})
	g, _ := NewGate(GateConfig{Whitelist: wl, Blacklist: bl, Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	c := Caller{Address: stranger}
	b.ReportAllocs()
	for b.Loop() {
		if d, err := g.Decide(ctx, c); err != nil || !d.Allowed() {
			b.Fatal(d, err)
		}
	}
}
