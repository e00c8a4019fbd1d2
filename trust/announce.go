package trust

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SignAnnounce signs a relay ANNOUNCE message (any value encoding to a JSON
// object: type, address, timestamp, summary, endpoints, relay, profile…).
// The signature covers the whole message minus "signature" in FormRelay,
// as the relay checks it. "address" is set to id's address when missing and
// must equal it when present. It returns the message with "signature" added.
func SignAnnounce(id *Identity, msg any) ([]byte, error) {
	raw, ok := msg.(json.RawMessage)
	if !ok {
		b, err := json.Marshal(msg)
		if err != nil {
			return nil, fmt.Errorf("announce: %w", err)
		}
		raw = b
	}
	root, err := parseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	if root.kind != jObject {
		return nil, fmt.Errorf("announce: message must be a JSON object")
	}
	root = withoutKey(root, "signature")
	switch a := root.member("address"); {
	case a == nil:
		root.keys = append(root.keys, "address")
		root.vals = append(root.vals, &jvalue{kind: jString, s: id.Address()})
	case a.kind != jString || !strings.EqualFold(a.s, id.Address()):
		return nil, fmt.Errorf("announce: address must be the signer's, %s", id.Address())
	}
	signed, _ := encodeForm(nil, root, FormRelay)
	root.keys = append(root.keys, "signature")
	root.vals = append(root.vals, &jvalue{kind: jString, s: hex.EncodeToString(id.Sign(signed))})
	return encodeForm(nil, root, FormPythonUTF8)
}

// VerifyAnnounce checks a relay ANNOUNCE message: its "signature" must verify
// over the rest of the message in FormRelay under the key of its "address",
// and its "timestamp" must be within window of now (DefaultWindow if window
// is zero). It returns the announcing address in lower case. Errors match
// ErrUnauthorized.
func VerifyAnnounce(raw []byte, now time.Time, window time.Duration) (string, error) {
	root, err := parseJSON(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if root.kind != jObject {
		return "", fmt.Errorf("%w: message is not a JSON object", ErrMalformed)
	}
	sv := root.member("signature")
	if sv == nil || sv.kind != jString || sv.s == "" {
		return "", fmt.Errorf("%w: announce has no signature", ErrUnsigned)
	}
	av := root.member("address")
	if av == nil || av.kind != jString {
		return "", fmt.Errorf("%w: announce has no address", ErrMalformed)
	}
	pub, err := ParseAddress(av.s)
	if err != nil {
		return "", fmt.Errorf("%w: announce address is not an address", ErrMalformed)
	}
	sig, err := decodeSignature(sv.s)
	if err != nil {
		return "", err
	}
	if window <= 0 {
		window = DefaultWindow
	}
	tv := &Verifier{window: window, now: func() time.Time { return now }}
	if _, err := tv.checkTime(root.member("timestamp"), "timestamp"); err != nil {
		return "", err
	}
	msg, _ := encodeForm(nil, withoutKey(root, "signature"), FormRelay)
	if !ed25519.Verify(pub, msg, sig) {
		return "", ErrBadSignature
	}
	return AddressOf(pub), nil
}

// withoutKey returns a shallow copy of object v without key.
func withoutKey(v *jvalue, key string) *jvalue {
	out := &jvalue{kind: jObject, start: v.start, end: v.end}
	for i, k := range v.keys {
		if k != key {
			out.keys = append(out.keys, k)
			out.vals = append(out.vals, v.vals[i])
		}
	}
	return out
}
