package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode"
	"unicode/utf8"
)

// What runs must be what was signed. The signature is checked over the
// exact member "payload" (and a body digest over the exact "session",
// "images" and "files"), while encoding/json matches member names without
// regard to case and lets the last of repeated members win: a body with
// both "payload" and "PAYLOAD", or with "Images" beside a digest that
// covers no images, would run what nobody signed. checkKeys refuses such
// bodies before anything is decoded, so every decoder that follows sees
// one member per known name, spelled exactly. Unknown members are still
// ignored (clients add fields), unless they are a case variant of a known
// one.

// protocolKeys are the member names the host decodes, at any depth of a
// request body or frame: the envelope, the payload, frames' fields, file
// entries and the session object's members.
var protocolKeys = []string{
	// envelope and payload
	"payload", "from", "signature", "timestamp", "to", "digest", "nonce", "seq",
	"invite_code", "payment", "signed_frames", "method", "path", "admin", "address",
	// frames and POST /input
	"type", "prompt", "session", "session_id", "images", "files", "input_id", "last_msg_id",
	"approved", "scope", "feedback", "answer", "ts",
	// file entries
	"name", "data",
	// the session object
	"messages", "turn", "iteration", "updated", "role", "content", "parts", "text", "id",
}

var foldedKeys = func() map[string]string {
	m := make(map[string]string, len(protocolKeys))
	for _, k := range protocolKeys {
		m[foldKey(k)] = k
	}
	return m
}()

// foldKey folds a member name the way encoding/json compares them: two
// names match there exactly when their folds are equal.
func foldKey(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			b = append(b, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		b = utf8.AppendRune(b, r)
		i += n
	}
	return string(b)
}

// errKeyCollision marks a body refused by checkKeys.
var errKeyCollision = errors.New("ambiguous member names")

// maxKeyDepth bounds the nesting checkKeys walks (and so accepts).
const maxKeyDepth = 200

// keySpec says where checkKeys looks: the objects the host decodes into
// structs (the body, its payload, file entries, the session, its messages
// and their parts). Objects below them that are carried as raw JSON (a
// tool call's arguments) are the model's or the client's own business.
type keySpec struct {
	fields map[string]*keySpec // members whose values are checked too
	elem   *keySpec            // for arrays: the spec of each element
	// folded checks every object at and below this value with no
	// vocabulary: no two of its member names may fold alike.
	folded bool
}

var (
	partSpec    = &keySpec{}
	messageSpec = &keySpec{fields: map[string]*keySpec{"parts": {elem: partSpec}, "content": {elem: partSpec}}}
	sessionSpec = &keySpec{fields: map[string]*keySpec{"messages": {elem: messageSpec}}}
	bodySpec    = &keySpec{fields: map[string]*keySpec{
		"payload": {},
		"files":   {elem: &keySpec{}},
		"session": sessionSpec,
	}}
)

// checkKeys refuses a JSON body in which a member name of an object the
// host decodes is a case variant of a protocol key ("PAYLOAD", "Images",
// "ſession") or a protocol key appears twice. The error is a 400 naming
// the member.
func checkKeys(body []byte) error {
	return walkBody(body, bodySpec)
}

// foldedSpec is checkA2AKeys': every object of the body, any member name.
var foldedSpec = &keySpec{folded: true}

// walkBody walks the one JSON value body holds with walkKeys; the error is
// a 400 naming what is wrong.
func walkBody(body []byte, spec *keySpec) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := walkKeys(dec, spec, 0); err != nil {
		if errors.Is(err, errKeyCollision) {
			return &httpError{Status: http.StatusBadRequest, Msg: err.Error(), Err: err}
		}
		var he *httpError
		if errors.As(err, &he) {
			return he
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "request body holds more than one JSON value")
	}
	return nil
}

// walkKeys reads one JSON value from dec, checking the member names of the
// objects spec names (nil: none, the value is only read; folded: every
// object at and below, against each other rather than the protocol's
// keys).
func walkKeys(dec *json.Decoder, spec *keySpec, depth int) error {
	if depth > maxKeyDepth {
		return errorf(http.StatusBadRequest, "request body nests deeper than %d levels", maxKeyDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '[':
		var elem *keySpec
		if spec != nil {
			elem = spec.elem
			if spec.folded {
				elem = spec
			}
		}
		for dec.More() {
			if err := walkKeys(dec, elem, depth+1); err != nil {
				return err
			}
		}
	case '{':
		var seen map[string]bool
		var folds map[string]string
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			var sub *keySpec
			switch {
			case spec != nil && spec.folded:
				f := foldKey(k)
				if prev, dup := folds[f]; dup {
					if prev == k {
						return fmt.Errorf("%w: member %q appears twice", errKeyCollision, clipString(k, 40))
					}
					return fmt.Errorf("%w: members %q and %q differ only in case; send each member once, spelled exactly", errKeyCollision, clipString(prev, 40), clipString(k, 40))
				}
				if folds == nil {
					folds = map[string]string{}
				}
				folds[f] = k
				sub = spec
			case spec != nil:
				if known, ok := foldedKeys[foldKey(k)]; ok {
					if k != known {
						return fmt.Errorf("%w: member %q differs from the protocol's %q only in case; send each member once, spelled exactly", errKeyCollision, clipString(k, 40), known)
					}
					if seen[k] {
						return fmt.Errorf("%w: member %q appears twice", errKeyCollision, k)
					}
					if seen == nil {
						seen = map[string]bool{}
					}
					seen[k] = true
				}
				sub = spec.fields[k]
			}
			if err := walkKeys(dec, sub, depth+1); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// decodeBody checks a body's member names (checkKeys), then decodes it into
// v, ignoring members v does not name, as the reference host does.
func decodeBody(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errorf(http.StatusBadRequest, "request body is empty; send a JSON object")
	}
	if err := checkKeys(b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return jsonError(err)
	}
	return nil
}
