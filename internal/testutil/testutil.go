// Package testutil holds the helpers the module's tests share, so each
// has one home: a goroutine-safe output buffer that a test can wait on, a
// settable clock, a free TCP port, and polling with a deadline for state
// that gives no event to wait on (another process, a container).
//
// It is imported only by tests.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer is a goroutine-safe io.Writer for a command's or a logger's
// output. Its zero value is ready to use.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and dropped at every write
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitFor waits until the buffer holds s, or ctx ends: a test waits for
// what a process or logger writes without polling.
func (b *Buffer) WaitFor(ctx context.Context, s string) error {
	_, err := b.wait(ctx, fmt.Sprintf("%q", s), func(out string) []string {
		if strings.Contains(out, s) {
			return []string{s}
		}
		return nil
	})
	return err
}

// WaitMatch waits until re matches what the buffer holds, or ctx ends,
// and returns the match and its submatches (re.FindStringSubmatch).
func (b *Buffer) WaitMatch(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	return b.wait(ctx, re.String(), re.FindStringSubmatch)
}

// wait checks match at every write until it returns a non-nil result.
func (b *Buffer) wait(ctx context.Context, what string, match func(string) []string) ([]string, error) {
	for {
		b.mu.Lock()
		if m := match(b.b.String()); m != nil {
			b.mu.Unlock()
			return m, nil
		}
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("the output never matched %s: %w", what, ctx.Err())
		}
	}
}

// Clock is a settable clock for code that takes a `func() time.Time`.
// Its zero value reads the zero time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a process the test starts and that must be told its port.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Eventually polls cond until it holds, failing the test after timeout.
// It is for state that announces nothing (another process, a container,
// a background connection of a server under test); wait on a channel or
// Buffer.WaitFor where there is one.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Context is the context for a test's waits on the code under test (a
// frame, an answer, a run): it ends a little before the test binary's own
// deadline (go test -timeout), leaving time to report what was seen and
// clean up, and when the test ends. A wait bounded by it fails only when
// the whole run would time out anyway, never because a loaded machine (a
// shared CI runner under -race) is slower than a fixed number of seconds
// guessed on a fast one; a hang still fails, with the test's own message.
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx := t.Context()
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := dt.Deadline(); ok {
			margin := min(time.Until(deadline)/10, 30*time.Second)
			c, cancel := context.WithDeadline(ctx, deadline.Add(-margin))
			t.Cleanup(cancel)
			return c
		}
	}
	return ctx
}
