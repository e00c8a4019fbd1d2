package policy

import (
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/trust"
)

// t0 is the tests' fixed "now".
var t0 = time.Unix(1_700_000_000, 0)

// testIdentity returns a fixed identity; n picks one of several.
func testIdentity(t testing.TB, n byte) *trust.Identity {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = n + byte(i)
	}
	id, err := trust.IdentityFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }
func (c *clock) Now() time.Time   { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
