package testutil

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"
)

func TestBufferWaitFor(t *testing.T) {
	var b Buffer
	go func() {
		for i := range 3 {
			fmt.Fprintf(&b, "line %d\n", i)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitFor(ctx, "line 2"); err != nil {
		t.Fatal(err)
	}
	m, err := b.WaitMatch(ctx, regexp.MustCompile(`line (\d)`))
	if err != nil || m[1] != "0" {
		t.Fatalf("WaitMatch = %q, %v", m, err)
	}
	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := b.WaitFor(short, "never"); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitFor on a done context: %v", err)
	}
}

func TestClock(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	c := NewClock(start)
	c.Advance(time.Minute)
	if got := c.Now(); !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("Now %v", got)
	}
}
