package policy

import (
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
