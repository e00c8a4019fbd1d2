package trust

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Envelope is a signed message as it travels:
//
//	{"payload": {...}, "from": "0x…", "signature": "<hex>", "timestamp"?: N}
//
// The signature is Ed25519 over the canonical JSON of Payload by the key
// whose address is From. Requests add their own fields beside these
// (session, images, files, type, …); Envelope holds only the signed part.
type Envelope struct {
	// Payload is the signed object, byte for byte as produced or received.
	Payload json.RawMessage `json:"payload"`
	// From is the signer's address.
	From string `json:"from"`
	// Signature is the hex Ed25519 signature; a "0x" prefix is accepted.
	Signature string `json:"signature"`
	// Timestamp is an optional unsigned copy of the time some clients add
	// beside the payload; verification uses payload.timestamp only.
	Timestamp json.Number `json:"timestamp,omitempty"`
}

// Sign signs payload, which must encode to a JSON object, with id. The
// envelope's Payload holds the canonical JSON (FormPython) that was signed,
// so every verifier re-derives exactly those bytes.
//
// Sign signs what it is given: a request payload should carry "timestamp"
// (Unix seconds) and "to" (the recipient's address); see NewPayload.
func Sign(id *Identity, payload any) (Envelope, error) {
	c, err := Canonical(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("signing: %w", err)
	}
	if len(c) == 0 || c[0] != '{' {
		return Envelope{}, fmt.Errorf("signing: payload must be a JSON object")
	}
	return Envelope{
		Payload:   c,
		From:      id.Address(),
		Signature: hex.EncodeToString(id.Sign(c)),
	}, nil
}

// NewPayload returns a request payload for recipient to at time now:
// fields plus "to" and "timestamp" (Unix seconds). A "digest" of the
// request's session, images and files (BodyDigest) may be added to fields.
func NewPayload(to string, now time.Time, fields map[string]any) map[string]any {
	p := make(map[string]any, len(fields)+2)
	for k, v := range fields {
		p[k] = v
	}
	if to != "" {
		p["to"] = to
	}
	p["timestamp"] = now.Unix()
	return p
}

// ParseEnvelope reads the signed part of a message: a JSON object with an
// object "payload", a "from" address and a hex "signature". Other fields are
// ignored. It checks shape only, not the signature (see Verifier). A message
// with none of the three fields is ErrUnsigned (a plain request); one with
// some but not all, or malformed ones, is ErrMalformed or ErrBadSignature.
func ParseEnvelope(raw []byte) (Envelope, error) {
	pe, err := parseSigned(raw)
	if err != nil {
		return Envelope{}, err
	}
	env := Envelope{
		Payload:   append(json.RawMessage(nil), raw[pe.payload.start:pe.payload.end]...),
		From:      pe.from,
		Signature: pe.sigText,
	}
	if ts := pe.root.member("timestamp"); ts != nil && ts.kind == jNumber {
		env.Timestamp = json.Number(ts.s)
	}
	return env, nil
}

// parsedEnvelope is a signed message split into its parts.
type parsedEnvelope struct {
	root    *jvalue
	payload *jvalue
	from    string // as received
	pub     ed25519.PublicKey
	sigText string
	sig     []byte
}

func parseSigned(raw []byte) (*parsedEnvelope, error) {
	root, err := parseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if root.kind != jObject {
		return nil, fmt.Errorf("%w: message is not a JSON object", ErrMalformed)
	}
	payload, from, sig := root.member("payload"), root.member("from"), root.member("signature")
	switch {
	case payload == nil && from == nil && sig == nil:
		return nil, ErrUnsigned
	case sig == nil || sig.kind == jNull || sig.kind == jString && sig.s == "":
		return nil, fmt.Errorf("%w: a signed message needs \"signature\"", ErrMalformed)
	case from == nil || from.kind == jNull || from.kind == jString && from.s == "":
		return nil, fmt.Errorf("%w: a signed message needs \"from\"", ErrMalformed)
	case payload == nil || payload.kind != jObject:
		return nil, fmt.Errorf("%w: \"payload\" must be an object", ErrMalformed)
	case from.kind != jString:
		return nil, fmt.Errorf("%w: \"from\" must be a string", ErrMalformed)
	case sig.kind != jString:
		return nil, fmt.Errorf("%w: \"signature\" must be a string", ErrMalformed)
	}
	pub, err := ParseAddress(from.s)
	if err != nil {
		return nil, fmt.Errorf("%w: \"from\" is not an address", ErrMalformed)
	}
	sigBytes, err := decodeSignature(sig.s)
	if err != nil {
		return nil, err
	}
	return &parsedEnvelope{root: root, payload: payload, from: from.s, pub: pub, sigText: sig.s, sig: sigBytes}, nil
}

// decodeSignature decodes a hex signature with an optional 0x prefix.
func decodeSignature(s string) ([]byte, error) {
	h := s
	if len(h) >= 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') {
		h = h[2:]
	}
	if len(h) != 2*ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature must be %d hex characters", ErrBadSignature, 2*ed25519.SignatureSize)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not hex", ErrBadSignature)
	}
	return b, nil
}

// The headers of a signed GET.
const (
	HeaderFrom      = "X-Co-From"
	HeaderSignature = "X-Co-Signature"
	HeaderTimestamp = "X-Co-Timestamp"
	// HeaderTo names the agent the request is for; required, so headers a
	// client made for one agent are refused by every other.
	HeaderTo = "X-Co-To"
	// HeaderNonce makes two requests signed in the same second distinct
	// (each signed request is accepted once).
	HeaderNonce = "X-Co-Nonce"
)

// SignHeaders returns the headers that sign a GET (or any body-less request)
// for the agent whose address is to: the signature covers the canonical JSON
// of {"method", "nonce", "path", "timestamp", "to"} with the method in upper
// case, the path without its query and a fresh random nonce. The agent
// accepts them once.
func SignHeaders(id *Identity, method, path, to string, now time.Time) http.Header {
	var n [12]byte
	rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	ts := now.Unix()
	msg := headerPayload(method, path, strconv.FormatInt(ts, 10), to, nonce)
	c, _ := encodeForm(nil, msg, FormPython) // cannot fail: a known form
	h := make(http.Header, 5)
	h.Set(HeaderFrom, id.Address())
	h.Set(HeaderSignature, hex.EncodeToString(id.Sign(c)))
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderTo, to)
	h.Set(HeaderNonce, nonce)
	return h
}

// headerPayload builds {"method","nonce"?,"path","timestamp","to"} as a
// parsed value; ts is an integer literal, an empty nonce is left out.
func headerPayload(method, path, ts, to, nonce string) *jvalue {
	v := &jvalue{kind: jObject}
	add := func(k string, val *jvalue) {
		v.keys = append(v.keys, k)
		v.vals = append(v.vals, val)
	}
	add("method", &jvalue{kind: jString, s: strings.ToUpper(method)})
	if nonce != "" {
		add("nonce", &jvalue{kind: jString, s: nonce})
	}
	add("path", &jvalue{kind: jString, s: path})
	add("timestamp", &jvalue{kind: jNumber, s: ts})
	add("to", &jvalue{kind: jString, s: to})
	return v
}

// DigestPrefix starts every body digest.
const DigestPrefix = "sha256:"

// The request fields outside the payload that a body digest covers.
var digestFields = []string{"session", "images", "files"}

// BodyDigest returns the digest that binds a signed request's attachments
// and session to its signature: "sha256:" and the hex SHA-256 of the
// canonical JSON of {"session": …, "images": …, "files": …}, leaving out
// fields that are absent (nil) or JSON null. A client puts it in the signed
// payload as "digest"; the verifier then rejects a request whose outer
// session, images or files differ from what was signed. Whitespace and key
// order of the fields do not matter.
func BodyDigest(session, images, files json.RawMessage) (string, error) {
	vals := make([]*jvalue, len(digestFields))
	for i, raw := range []json.RawMessage{session, images, files} {
		if len(raw) == 0 {
			continue
		}
		v, err := parseJSON(raw)
		if err != nil {
			return "", fmt.Errorf("body digest: %s: %w", digestFields[i], err)
		}
		vals[i] = v
	}
	return digestOf(vals), nil
}

// digestOf computes the body digest of the session, images and files values
// (nil for absent).
func digestOf(vals []*jvalue) string {
	obj := &jvalue{kind: jObject}
	for i, v := range vals {
		if v == nil || v.kind == jNull {
			continue
		}
		obj.keys = append(obj.keys, digestFields[i])
		obj.vals = append(obj.vals, v)
	}
	c, _ := encodeForm(nil, obj, FormPython)
	sum := sha256.Sum256(c)
	return DigestPrefix + hex.EncodeToString(sum[:])
}
