package trust

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
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

// nopLedger never remembers, so one message can be verified many times.
type nopLedger struct{}

func (nopLedger) Seen(context.Context, string, time.Time) (bool, error) { return false, nil }
