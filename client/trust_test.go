package client_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/internal/testutil/testrelay"

	"github.com/agenthost/agenthost/trust/policy"
)

// TestOnboardingWithTheTrustGate: the host's own trust gate (a policy that
// admits contacts and onboards strangers with an invite code) judges the
// client's signature, directly and through the relay.
func TestOnboardingWithTheTrustGate(t *testing.T) {
	policy, err := policy.Parse([]byte("onboard:\n  invite_code: [BETA2024]\ndefault: deny\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	r := testrelay.Start(t, "127.0.0.1:0")
	s := newAgent(t, "offline/demo", host.WithTrustPolicy(policy), host.WithRelayURL(r.URL()))
	testutil.Eventually(t, 5*time.Second, "the agent announced", announced(s))
	url := serveAgent(t, s)
	ctx := ctxFor(t, 30*time.Second)

	for _, via := range []string{"direct", "relay"} {
		t.Run(via, func(t *testing.T) {
			id := newID(t)
			connect := func(opts ...client.Option) *client.Client {
				t.Helper()
				opts = append(opts, client.WithKeys(id))
				target := url
				if via == "relay" {
					target = s.Address()
					opts = append(opts, client.WithRelay(r.URL()), client.WithRelayOnly())
				}
				c, err := client.Connect(ctx, target, opts...)
				if err != nil {
					t.Fatal(err)
				}
				if c.Relayed() != (via == "relay") {
					t.Fatalf("relayed = %v", c.Relayed())
				}
				return c
			}
			if _, err := connect().Input(ctx, "hello"); !errors.Is(err, client.ErrOnboardRequired) {
				t.Fatalf("stranger without an invite code: %v", err)
			}
			if _, err := connect(client.WithInviteCode("WRONG")).Input(ctx, "hello"); !errors.Is(err, client.ErrForbidden) {
				t.Fatalf("wrong invite code: %v", err)
			}
			res, err := connect(client.WithInviteCode("BETA2024")).Input(ctx, "use add on 2 and 3")
			if err != nil || !strings.Contains(res.Result, "5") {
				t.Fatalf("onboarded: %+v, %v", res, err)
			}
			c := connect()
			if _, err := c.Input(ctx, "My name is Ada"); err != nil {
				t.Fatalf("contact, no code: %v", err)
			}
			if res, err := c.Input(ctx, "What is my name?"); err != nil || !strings.Contains(res.Result, "Ada") {
				t.Fatalf("contact, continued: %+v, %v", res, err)
			}
			if info, err := c.Session(ctx, c.SessionID()); err != nil || info.Status != "done" {
				t.Fatalf("Session: %+v, %v", info, err)
			}
		})
	}
	c, err := client.Connect(ctx, url, client.WithoutSigning())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Input(ctx, "hello"); !errors.Is(err, client.ErrForbidden) && !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("unsigned under default deny: %v", err)
	}
}
