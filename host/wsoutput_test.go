package host_test

import (
	"encoding/json"
	"testing"

	"github.com/agenthost/agenthost/trust"
)

// TestOutputSignedLiveAndReplayed: an OUTPUT signed as it happens (from
// what the engine computed once for every connection) and the same OUTPUT
// replayed from the store to a resuming client (parsed again) sign the same
// session id, result hash and session digest, and that digest is the one a
// client computes from the frame's "session".
func TestOutputSignedLiveAndReplayed(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice := newIdentity(t)

	live := dialTrustWS(t, h)
	live.send(signedFrame(t, alice, h.Address(), "CONNECT", nil, nil))
	c1 := live.read()
	if c1["type"] != "CONNECTED" {
		t.Fatalf("CONNECT: %v", c1)
	}
	live.send(signedFrame(t, alice, h.Address(), "INPUT", map[string]any{"prompt": "Translate hello"}, nil))
	out1, _ := live.until("OUTPUT", "ERROR")
	if out1["type"] != "OUTPUT" {
		t.Fatalf("run: %v", out1)
	}
	checkSignedOutput(t, h.Address(), alice.Address(), c1, out1)
	p1 := outputPayload(t, h.Address(), alice.Address(), out1)

	again := dialTrustWS(t, h)
	again.send(signedFrame(t, alice, h.Address(), "CONNECT", map[string]any{"session_id": out1["session_id"], "last_msg_id": "0"}, nil))
	c2 := again.read()
	if c2["type"] != "CONNECTED" {
		t.Fatalf("CONNECT to resume: %v", c2)
	}
	out2, _ := again.until("OUTPUT")
	if out2["id"] != out1["id"] {
		t.Fatalf("replayed OUTPUT %v, live %v", out2["id"], out1["id"])
	}
	checkSignedOutput(t, h.Address(), alice.Address(), c2, out2)
	p2 := outputPayload(t, h.Address(), alice.Address(), out2)

	sess, _ := json.Marshal(out1["session"])
	want, err := trust.BodyDigest(sess, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"session_id", "result_sha256", "digest", "event_id"} {
		if p1[k] == nil || p1[k] != p2[k] {
			t.Errorf("%s: live %v, replayed %v", k, p1[k], p2[k])
		}
	}
	if p1["digest"] != want {
		t.Errorf("digest %v, the frame's session digests to %s", p1["digest"], want)
	}
}

// outputPayload verifies an OUTPUT's signature and returns its payload.
func outputPayload(t *testing.T, agent, client string, out map[string]any) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(out)
	v, err := trust.NewVerifier(trust.VerifierConfig{Address: client})
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.Verify(t.Context(), raw)
	if err != nil || m.From != agent {
		t.Fatalf("OUTPUT signature: %v", err)
	}
	var p map[string]any
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}
