package host_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

// TestFrameBinding: frames after CONNECT are bound to their signer. On
// the old code an unsigned INPUT after a whitelisted caller's signed
// CONNECT ran as that caller under strict, an injected unsigned
// APPROVAL_RESPONSE approved a tool on a connection whose frames were
// signed, and OUTPUT carried no signature.
func TestFrameBinding(t *testing.T) {
	alice := newIdentity(t)

	t.Run("strict refuses unsigned frames after a signed CONNECT", func(t *testing.T) {
		h := startTrustHost(t, t.TempDir(), host.WithTrust("strict"), host.WithWhitelist(alice.Address()))
		w := dialTrustWS(t, h)
		w.send(signedFrame(t, alice, h.Address(), "CONNECT", nil, nil))
		if c := w.read(); c["type"] != "CONNECTED" {
			t.Fatalf("CONNECT: %v", c)
		}
		w.send(map[string]any{"type": "INPUT", "prompt": "injected by the relay"})
		if m, _ := w.until("OUTPUT", "ERROR"); m["type"] != "ERROR" || m["code"] != "unauthorized" {
			t.Fatalf("an unsigned INPUT ran as the whitelisted signer: %v", m["type"])
		}
		for _, typ := range []string{"INTERRUPT", "SESSION_STATUS"} {
			w.send(map[string]any{"type": typ})
			if m := w.read(); m["type"] != "ERROR" || m["code"] != "unauthorized" {
				t.Fatalf("unsigned %s under strict: %v", typ, m)
			}
		}
	})

	t.Run("a connection that declared signed frames refuses unsigned ones", func(t *testing.T) {
		h := startTrustHost(t, t.TempDir(), host.WithApproval("danger"))
		w := dialTrustWS(t, h)
		w.send(signedFrame(t, alice, h.Address(), "CONNECT", map[string]any{"signed_frames": true}, nil))
		c := w.read()
		if c["type"] != "CONNECTED" {
			t.Fatalf("CONNECT: %v", c)
		}
		w.send(boundFrame(t, alice, h.Address(), c, 1, "INPUT", map[string]any{"prompt": `use danger on "launch"`}, nil))
		if m, _ := w.until("approval_needed", "ERROR"); m["type"] != "approval_needed" {
			t.Fatalf("bound INPUT: %v", m)
		}
		// Injected by someone on the path: refused.
		w.send(map[string]any{"type": "APPROVAL_RESPONSE", "approved": true, "scope": "session"})
		if m := w.read(); m["type"] != "ERROR" || m["code"] != "unauthorized" {
			t.Fatalf("an unsigned approval was accepted: %v", m)
		}
		// The same payload again (a replay), one bound to another
		// connection, or a signed payload of another frame type: refused.
		deny := boundFrame(t, alice, h.Address(), c, 2, "APPROVAL_RESPONSE", map[string]any{"approved": false, "feedback": "no"}, nil)
		other := map[string]any{"nonce": strings.Repeat("0", 32)}
		for name, f := range map[string]map[string]any{
			"other connection": boundFrame(t, alice, h.Address(), other, 3, "APPROVAL_RESPONSE", map[string]any{"approved": true}, nil),
			"stale seq":        boundFrame(t, alice, h.Address(), c, 0, "APPROVAL_RESPONSE", map[string]any{"approved": true}, nil),
			"other type":       boundFrame(t, alice, h.Address(), c, 4, "ASK_USER_RESPONSE", map[string]any{"approved": true}, map[string]any{"type": "APPROVAL_RESPONSE"}),
		} {
			w.send(f)
			if m := w.read(); m["type"] != "ERROR" || m["code"] != "unauthorized" {
				t.Fatalf("%s: %v", name, m)
			}
		}
		// The top-level fields beside a signed payload are ignored: this
		// says approved, the payload says no.
		deny["approved"] = true
		w.send(deny)
		out, got := w.until("OUTPUT", "ERROR")
		if out["type"] != "OUTPUT" {
			t.Fatalf("after the signed denial: %v", out)
		}
		for _, m := range got {
			if m["type"] == "tool_result" && m["status"] == "completed" {
				t.Fatalf("the tool ran although the signed answer denied it: %v", m)
			}
		}
		w.send(deny)
		if m := w.read(); m["type"] != "ERROR" || m["code"] != "unauthorized" {
			t.Fatalf("replayed frame: %v", m)
		}
		checkSignedOutput(t, h.Address(), alice.Address(), c, out)
	})

	t.Run("the reference client's shape still works under careful", func(t *testing.T) {
		h := startTrustHost(t, t.TempDir())
		w := dialTrustWS(t, h)
		w.send(signedFrame(t, alice, h.Address(), "CONNECT", nil, map[string]any{"timestamp": 1}))
		c := w.read()
		w.send(map[string]any{"type": "INPUT", "input_id": "x", "prompt": "Translate hello"})
		out, _ := w.until("OUTPUT", "ERROR")
		if out["type"] != "OUTPUT" {
			t.Fatalf("TS-shaped INPUT: %v", out)
		}
		// The run is the CONNECT signer's.
		code, m := signedGet(t, alice, h.URL, "/sessions/"+out["session_id"].(string))
		wantStatus(t, code, 200, m)
		checkSignedOutput(t, h.Address(), alice.Address(), c, out)
	})
}

// checkSignedOutput verifies the host's signature on an OUTPUT as a client
// would: signer, connection nonce, recipient, result hash, session digest.
func checkSignedOutput(t testing.TB, agent, client string, connected, out map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(out)
	v, err := trust.NewVerifier(trust.VerifierConfig{Address: client})
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.Verify(t.Context(), raw)
	if err != nil || m.From != agent {
		t.Fatalf("OUTPUT signature: %v (from %v)", err, m)
	}
	var p struct {
		Type, Nonce, SessionID, ResultSHA256 string
	}
	json.Unmarshal(m.Payload, &struct {
		Type         *string `json:"type"`
		Nonce        *string `json:"nonce"`
		SessionID    *string `json:"session_id"`
		ResultSHA256 *string `json:"result_sha256"`
	}{&p.Type, &p.Nonce, &p.SessionID, &p.ResultSHA256})
	sum := sha256.Sum256([]byte(out["result"].(string)))
	if p.Type != "OUTPUT" || p.Nonce != connected["nonce"] || p.ResultSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("OUTPUT payload %s", m.Payload)
	}
	// A rewritten answer no longer matches.
	out["result"] = "rewritten"
	sum = sha256.Sum256([]byte("rewritten"))
	if p.ResultSHA256 == hex.EncodeToString(sum[:]) {
		t.Fatal("hash covers nothing")
	}
}

// TestUnaddressedOnboarding: the reference clients sign ONBOARD_SUBMIT
// without "to"; the host accepts that only from the key that signed the
// connection's addressed CONNECT, and refuses other unaddressed payloads.
func TestUnaddressedOnboarding(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/.co/host.yaml", "trust:\n  onboard:\n    invite_code: [BETA2024]\n  default: deny\n")
	h := startTrustHost(t, dir)
	alice, mallory := newIdentity(t), newIdentity(t)
	unaddressed := func(id *trust.Identity, typ string, fields map[string]any) map[string]any {
		env, err := trust.Sign(id, trust.NewPayload("", time.Now(), fields))
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"type": typ, "payload": env.Payload, "from": env.From, "signature": env.Signature}
	}
	// Without an addressed CONNECT by the same key: refused.
	w := dialTrustWS(t, h)
	w.send(unaddressed(mallory, "ONBOARD_SUBMIT", map[string]any{"invite_code": "BETA2024"}))
	if m := w.read(); m["type"] != "ERROR" || m["code"] != "unauthorized" {
		t.Fatalf("unaddressed submit without CONNECT: %v", m)
	}
	w.send(unaddressed(mallory, "CONNECT", map[string]any{"x": 1}))
	if m := w.read(); m["type"] != "ERROR" || !strings.Contains(m["message"].(string), "to") {
		t.Fatalf("unaddressed CONNECT: %v", m)
	}
	// The reference client's shape: addressed CONNECT, unaddressed submit.
	w = dialTrustWS(t, h)
	w.send(signedFrame(t, alice, h.Address(), "CONNECT", nil, nil))
	if m := w.read(); m["type"] != "ONBOARD_REQUIRED" {
		t.Fatalf("CONNECT: %v", m)
	}
	w.send(unaddressed(mallory, "ONBOARD_SUBMIT", map[string]any{"invite_code": "BETA2024"}))
	if m := w.read(); m["type"] != "ERROR" || m["code"] != "unauthorized" {
		t.Fatalf("another key's unaddressed submit: %v", m)
	}
	w.send(unaddressed(alice, "ONBOARD_SUBMIT", map[string]any{"invite_code": "BETA2024"}))
	if m := w.read(); m["type"] != "ONBOARD_SUCCESS" {
		t.Fatalf("the CONNECT signer's unaddressed submit: %v", m)
	}
}
