package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/agenthost/agenthost/trust"
	"github.com/agenthost/agenthost/trust/policy"
)

// A host verifies a signed POST /input body, then asks its Gate.
func Example() {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	host, _ := trust.IdentityFromSeed(make([]byte, 32))
	caller, _ := trust.NewIdentity()

	// Client side: sign {"prompt","to","timestamp"} and send it as the body.
	env, _ := trust.Sign(caller, trust.NewPayload(host.Address(), now, map[string]any{"prompt": "Translate 'hello'"}))
	body, _ := json.Marshal(env)

	// Host side, once: a verifier (with the database's replay ledger) and a gate.
	v, _ := trust.NewVerifier(trust.VerifierConfig{Address: host.Address(), Now: func() time.Time { return now }})
	pol, _ := policy.Parse([]byte("strict"), ".")
	gate, _ := policy.NewGate(policy.GateConfig{Policy: pol, Logger: slog.New(slog.DiscardHandler)})

	// Per request.
	m, err := v.Verify(ctx, body)
	var who policy.Caller
	switch {
	case errors.Is(err, trust.ErrUnsigned): // anonymous: who stays empty
	case errors.Is(err, trust.ErrUnauthorized):
		fmt.Println("401:", err)
		return
	case err != nil:
		fmt.Println("500:", err)
		return
	default:
		who = policy.Caller{Address: m.From, Credentials: policy.CredentialsFromPayload(m.Payload)}
	}
	d, err := gate.Decide(ctx, who)
	switch {
	case err != nil:
		fmt.Println("500:", err)
	case d.Allowed():
		fmt.Println("200")
	case d.SignatureRequired:
		fmt.Println("401:", d.Reason)
	default:
		fmt.Println("403:", d.Level, d.Reason)
	}

	// A replay of the same body is refused.
	_, err = v.Verify(ctx, body)
	fmt.Println("replay:", err)
	// Output:
	// 403: stranger not admitted by this agent's trust policy
	// replay: signature already used
}
