package trust_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agenthost/agenthost/trust"
)

// A client signs a request to an agent; the agent verifies it once.
func Example() {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	agentID, _ := trust.IdentityFromSeed(make([]byte, 32))
	caller, _ := trust.NewIdentity()

	// Client side: sign {"prompt", "to", "timestamp"} and send it as the body.
	env, _ := trust.Sign(caller, trust.NewPayload(agentID.Address(), now, map[string]any{"prompt": "Translate 'hello'"}))
	body, _ := json.Marshal(env)

	// Agent side: one verifier (a host gives it the database's replay ledger).
	v, _ := trust.NewVerifier(trust.VerifierConfig{Address: agentID.Address(), Now: func() time.Time { return now }})
	m, err := v.Verify(ctx, body)
	if err != nil {
		fmt.Println("401:", err)
		return
	}
	var p struct {
		Prompt string `json:"prompt"`
	}
	m.Decode(&p)
	fmt.Println("from the caller:", m.From == caller.Address(), "prompt:", p.Prompt)

	// The same body again is a replay.
	_, err = v.Verify(ctx, body)
	fmt.Println("replay:", err)
	// Output:
	// from the caller: true prompt: Translate 'hello'
	// replay: signature already used
}
