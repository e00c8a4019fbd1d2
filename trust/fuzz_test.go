package trust

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func addVectorSeeds(f *testing.F) {
	b, err := readVectorInputs()
	if err != nil {
		f.Fatal(err)
	}
	for _, in := range b {
		f.Add([]byte(in))
	}
}

func readVectorInputs() ([]string, error) {
	var v vectors
	b, err := readFile("testdata/canonical_vectors.json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	var out []string
	for _, c := range v.Cases {
		out = append(out, c.Input)
	}
	return out, nil
}

// FuzzCanonical checks that every form is idempotent, that FormPython is
// ASCII, and that the Python forms hold the same value.
func FuzzCanonical(f *testing.F) {
	addVectorSeeds(f)
	f.Add([]byte(`{"a":1e400,"b":-0.0,"c":"\ud800"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		forms := map[Form][]byte{}
		for _, form := range []Form{FormPython, FormPythonUTF8, FormJavaScript, FormRelay} {
			out, err := CanonicalForm(json.RawMessage(data), form)
			if err != nil {
				return // every form rejects the same inputs
			}
			forms[form] = out
			again, err := CanonicalForm(json.RawMessage(out), form)
			if err != nil {
				// Only Python's overflow spelling (Infinity) is not JSON.
				if !bytes.Contains(out, []byte("Infinity")) {
					t.Fatalf("%s output %q does not parse: %v", form, out, err)
				}
				continue
			}
			if !bytes.Equal(again, out) {
				t.Fatalf("%s not idempotent:\n%q\n%q", form, out, again)
			}
		}
		for _, c := range forms[FormPython] {
			if c >= 0x80 {
				t.Fatalf("FormPython output is not ASCII: %q", forms[FormPython])
			}
		}
		var a, b any
		if json.Unmarshal(forms[FormPython], &a) == nil {
			if err := json.Unmarshal(forms[FormPythonUTF8], &b); err != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("python forms differ: %q vs %q (%v)", forms[FormPython], forms[FormPythonUTF8], err)
			}
		}
	})
}

// FuzzParseEnvelope feeds arbitrary messages to ParseEnvelope and Verify.
func FuzzParseEnvelope(f *testing.F) {
	host, alice := testIdentity(f, 100), testIdentity(f, 1)
	f.Add(message(f, alice, fmt.Sprintf(`{"prompt":"hi","to":%q,"timestamp":%d}`, host.Address(), t0.Unix()), FormPython, nil))
	f.Add(message(f, alice, fmt.Sprintf(`{"x":{"b":1,"a":"é"},"timestamp":%d}`, t0.Unix()), FormJavaScript, map[string]string{"session": `{"id":1}`}))
	f.Add([]byte(`{"prompt":"plain"}`))
	f.Add([]byte(`{"payload":{},"from":"0x","signature":"0x"}`))
	v, err := NewVerifier(VerifierConfig{Address: host.Address(), Now: func() time.Time { return t0 }, Ledger: nopLedger{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data)
		if err == nil {
			if _, err := ParseAddress(env.From); err != nil {
				t.Fatalf("accepted from %q", env.From)
			}
			var p map[string]any
			if err := json.Unmarshal(env.Payload, &p); err != nil {
				t.Fatalf("payload %q is not an object: %v", env.Payload, err)
			}
		}
		m, verr := v.Verify(context.Background(), data)
		if verr == nil && (err != nil || m.From == "" || len(m.Payload) == 0) {
			t.Fatalf("Verify accepted %q (parse error %v)", data, err)
		}
	})
}

// FuzzParseList checks list parsing never panics and that listed addresses
// match.
func FuzzParseList(f *testing.F) {
	f.Add("# comment\n" + addrA + " # trailing\n\n0xabc*\n")
	f.Add("*\n")
	f.Add("0x" + strings.Repeat("A", 64) + "\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		l, err := ParseList("fuzz", strings.NewReader(text))
		if err != nil {
			return
		}
		for _, line := range strings.Split(text, "\n") {
			line, _, _ = strings.Cut(line, "#")
			if a, err := NormalizeAddress(strings.TrimSpace(line)); err == nil && !l.Match(a) {
				t.Fatalf("listed %s does not match", a)
			}
		}
		_ = l.Match(addrB)
	})
}

// FuzzParsePolicy checks that whatever YAML parses into a policy is valid
// and decides every level. Strings go through the markdown parser only, so
// the fuzzer never opens files.
func FuzzParsePolicy(f *testing.F) {
	f.Add(seedPolicyYAML)
	f.Add("strict")
	f.Add("---\nallow: [whitelisted]\n---\nI trust contacts.")
	f.Add("{allow: [0xab*], anonymous: ask, onboard: {payment: 3}}")
	f.Fuzz(func(t *testing.T, text string) {
		var v any
		if yaml.Unmarshal([]byte(text), &v) != nil {
			return
		}
		var p *Policy
		var err error
		if s, ok := v.(string); ok {
			p, err = ParsePolicyMarkdown(s)
		} else {
			p, err = PolicyFromValue(v, "")
		}
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed policy invalid: %v (%+v)", err, p)
		}
		for _, l := range []Level{LevelAnonymous, LevelStranger, LevelContact, LevelWhitelisted, LevelBlocked} {
			addr := addrA
			if l == LevelAnonymous {
				addr = ""
			}
			d := p.Evaluate(addr, l)
			switch d.Outcome {
			case OutcomeAllow, OutcomeDeny, OutcomeOnboard, OutcomeAsk:
			default:
				t.Fatalf("outcome %q", d.Outcome)
			}
			if l == LevelBlocked && d.Allowed() {
				t.Fatal("a blocked caller was admitted")
			}
		}
	})
}

// FuzzParseVerdict checks that a verdict is only ever read from a JSON
// boolean.
func FuzzParseVerdict(f *testing.F) {
	f.Add(`{"allow": true, "reason": "ok"}`)
	f.Add("```json\n{\"allow\": false}\n```")
	f.Fuzz(func(t *testing.T, text string) {
		allow, _, err := ParseVerdict(text)
		if err != nil && allow {
			t.Fatal("allowed with an error")
		}
		if allow && !strings.Contains(text, "true") {
			t.Fatalf("allowed without a true in %q", text)
		}
	})
}

// nopLedger never remembers, so one message can be verified many times.
type nopLedger struct{}

func (nopLedger) Seen(context.Context, string, time.Time) (bool, error) { return false, nil }
