package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

func fuzzGate(f *testing.F, cfg *host.Config) (*host.TrustGate, *trust.Identity) {
	id, err := trust.IdentityFromSeed(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	g, err := host.NewTrustGate(host.GateEnv{Config: cfg, Identity: id, Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	return g, id
}

// FuzzTrustGateAdmit feeds arbitrary messages to the gate as POST /input
// bodies and WebSocket frames: it must never panic, refusals must be 401
// or 403, and a signed message it admits must carry a valid signature
// (its caller is the signer).
func FuzzTrustGateAdmit(f *testing.F) {
	g, self := fuzzGate(f, &host.Config{Trust: host.TrustStrict})
	caller, _ := trust.IdentityFromSeed([]byte("0123456789abcdef0123456789abcdef"))
	env, _ := trust.Sign(caller, trust.NewPayload(self.Address(), time.Unix(1_800_000_000, 0), map[string]any{"prompt": "hi <b>&"}))
	good, _ := json.Marshal(env)
	f.Add(good)
	f.Add([]byte(`{"prompt":"x"}`))
	f.Add([]byte(`{"payload":{},"from":"0x","signature":""}`))
	f.Add([]byte(`{"payload":{"timestamp":1e400},"from":"` + caller.Address() + `","signature":"00"}`))
	f.Add([]byte(`[1,2,{"payload":null}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var probe struct {
			From      string `json:"from"`
			Signature string `json:"signature"`
		}
		json.Unmarshal(body, &probe)
		for _, r := range []*host.Request{
			{Transport: "http", Method: "POST", Path: "/input", Body: body, From: probe.From, Signature: probe.Signature},
			{Transport: "ws", Method: "CONNECT", Path: "/ws", Body: body, From: probe.From, Signature: probe.Signature},
		} {
			c, err := g.Admit(context.Background(), r)
			switch {
			case err == nil:
				if c.Address == "" || !r.Signed() {
					t.Fatalf("strict admitted an unsigned caller: %+v", c)
				}
			case !errors.Is(err, host.ErrUnauthorized) && !errors.Is(err, host.ErrForbidden):
				t.Fatalf("refusal is neither 401 nor 403: %v", err)
			}
		}
	})
}

// FuzzTrustHeaders feeds arbitrary signed-GET headers to the gate.
func FuzzTrustHeaders(f *testing.F) {
	g, _ := fuzzGate(f, &host.Config{Trust: host.TrustCareful})
	f.Add("0x00", "00", "1800000000", "/sessions")
	f.Add("", "", "", "/sessions/x")
	f.Add("0x"+string(make([]byte, 64)), "0x", "-1", "")
	f.Fuzz(func(t *testing.T, from, sig, ts, path string) {
		h := http.Header{}
		h.Set(trust.HeaderFrom, from)
		h.Set(trust.HeaderSignature, sig)
		h.Set(trust.HeaderTimestamp, ts)
		_, err := g.Admit(context.Background(), &host.Request{Transport: "http", Method: "GET", Path: path, Header: h})
		if err != nil && !errors.Is(err, host.ErrUnauthorized) && !errors.Is(err, host.ErrForbidden) {
			t.Fatalf("header refusal is neither 401 nor 403: %v", err)
		}
	})
}

// FuzzTrustPolicyConfig feeds arbitrary `trust:` mappings and texts to
// the gate's policy resolution: errors, never panics.
func FuzzTrustPolicyConfig(f *testing.F) {
	f.Add([]byte("allow: [contact]\ndefault: ask\njudge_cache_ttl: 60\njudge_model: offline/demo\n"), "I trust my friends")
	f.Add([]byte("onboard:\n  invite_code: [A]\n  payment: 10\n"), "strict")
	f.Add([]byte("deny: ['0xab*']\n"), "policy.md")
	id, _ := trust.IdentityFromSeed(make([]byte, 32))
	f.Fuzz(func(t *testing.T, mapping []byte, text string) {
		for _, cfg := range []*host.Config{{Trust: host.TrustCustom, TrustPolicy: mapping}, {Trust: host.TrustCustom, TrustText: text}} {
			g, err := host.NewTrustGate(host.GateEnv{Config: cfg, Identity: id, Logger: quietLogger()})
			if err == nil && g.Policy().Validate() != nil {
				t.Fatalf("accepted an invalid policy: %+v", g.Policy())
			}
		}
	})
}
