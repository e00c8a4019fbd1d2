package relay

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Header is what the relay reads of a frame: its routing fields. The rest
// of the frame is never decoded, so a 16 MiB image costs one validation
// pass, not a decode into maps. When a key repeats, the last one counts, as
// in encoding/json and Python's json module.
type Header struct {
	// Type is the frame's "type" ("" when absent or not a string).
	Type string
	// SessionID is the top-level "session_id" when it is a string.
	SessionID string
	// HasSessionID reports a top-level "session_id" member of any kind.
	HasSessionID bool
	// To is the top-level "to" (the agent a client addresses).
	To string
	// NestedSessionID is "session"."session_id", where clients that keep
	// their session in an object put its id.
	NestedSessionID string
}

// ParseHeader checks that frame is one JSON object and reads its routing
// fields.
func ParseHeader(frame []byte) (Header, error) {
	var h Header
	if !json.Valid(frame) {
		return h, fmt.Errorf("%w: not valid JSON", ErrMalformedFrame)
	}
	ms, ok := members(frame)
	if !ok {
		return h, fmt.Errorf("%w: not a JSON object", ErrMalformedFrame)
	}
	for _, m := range ms {
		switch string(m.keyBytes(frame)) { // compared without a copy
		case "type":
			h.Type, _ = stringValue(frame[m.val:m.end])
		case "session_id":
			h.HasSessionID = true
			h.SessionID, _ = stringValue(frame[m.val:m.end])
		case "to":
			h.To, _ = stringValue(frame[m.val:m.end])
		case "session":
			h.NestedSessionID = ""
			sub := frame[m.val:m.end]
			if inner, ok := members(sub); ok {
				for _, im := range inner {
					if im.keyIs(sub, "session_id") {
						h.NestedSessionID, _ = stringValue(sub[im.val:im.end])
					}
				}
			}
		}
	}
	return h, nil
}

// WithSessionID returns frame with its top-level "session_id" set to id and
// every other member unchanged. A frame that already carries exactly that id
// once is returned as is, without copying. frame must be a JSON object that
// ParseHeader accepted.
func WithSessionID(frame []byte, id string) ([]byte, error) {
	ms, ok := members(frame)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformedFrame)
	}
	n := 0
	same := false
	for _, m := range ms {
		if m.keyIs(frame, "session_id") {
			n++
			same = valueIs(frame[m.val:m.end], id)
		}
	}
	if n == 1 && same {
		return frame, nil
	}
	idJSON, err := json.Marshal(id)
	if err != nil {
		return nil, fmt.Errorf("session id: %w", err)
	}
	out := make([]byte, 0, len(frame)+len(idJSON)+16)
	out = append(out, `{"session_id":`...)
	out = append(out, idJSON...)
	for _, m := range ms {
		if m.keyIs(frame, "session_id") {
			continue
		}
		out = append(out, ',')
		out = append(out, frame[m.start:m.end]...)
	}
	return append(out, '}'), nil
}

// StringField returns the top-level string member key of a frame that
// ParseHeader accepted ("" when absent or not a string).
func StringField(frame []byte, key string) string {
	ms, _ := members(frame)
	v := ""
	for _, m := range ms {
		if m.keyIs(frame, key) {
			v, _ = stringValue(frame[m.val:m.end])
		}
	}
	return v
}

// ErrorFrame returns an ERROR frame carrying msg both as "error" (read by
// agents) and "message" (read by clients).
func ErrorFrame(msg string) []byte {
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}{TypeError, msg, msg})
	return b
}

// CloseFrame returns the frame that ends relayed session id, with an
// optional reason for the client.
func CloseFrame(id, reason string) []byte {
	b, _ := json.Marshal(struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
		Reason    string `json:"reason,omitempty"`
	}{TypeClose, id, CloseReason(reason)})
	return b
}

// CloseReason trims s to what a WebSocket close frame can carry: at most
// 120 bytes of valid UTF-8 without control characters.
func CloseReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	for len(s) > 120 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// ValidSessionID reports whether s may serve as a relay session id: 1 to
// MaxSessionIDLen characters of [A-Za-z0-9._:-]. The relay adopts a
// client's own session id only when it passes.
func ValidSessionID(s string) bool {
	if len(s) == 0 || len(s) > MaxSessionIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// member is one "key": value pair of an object, as offsets into its text:
// the key string spans [start, keyEnd), the value [val, end).
type member struct{ start, keyEnd, val, end int }

func (m member) key(b []byte) string {
	s, _ := stringValue(b[m.start:m.keyEnd])
	return s
}

// keyBytes is the key, decoded: the bytes between its quotes when it has
// no escape (no copy: a frame's keys are compared on every frame the
// relay forwards), a decoded copy otherwise.
func (m member) keyBytes(b []byte) []byte {
	raw := b[m.start+1 : m.keyEnd-1]
	if plainString(raw) {
		return raw
	}
	return []byte(m.key(b))
}

// keyIs reports whether the key is k, without copying a plain key.
func (m member) keyIs(b []byte, k string) bool { return string(m.keyBytes(b)) == k }

// valueIs reports whether the JSON value v is the string s.
func valueIs(v []byte, s string) bool {
	if len(v) >= 2 && v[0] == '"' && plainString(v[1:len(v)-1]) {
		return string(v[1:len(v)-1]) == s
	}
	d, ok := stringValue(v)
	return ok && d == s
}

// plainString reports whether the inside of a JSON string holds no escape
// or control character, so that its bytes are its value.
func plainString(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c < 0x20 {
			return false
		}
	}
	return true
}

// members lists the members of the JSON object b. b must be valid JSON (see
// json.Valid); members reports false when b is not an object. It never
// panics, whatever b holds.
func members(b []byte) ([]member, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil, true
	}
	ms := make([]member, 0, 8)
	for i < len(b) {
		var m member
		m.start = i
		i = skipValue(b, i)
		if i < 0 || b[m.start] != '"' {
			return nil, false
		}
		m.keyEnd = i
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		m.val = i
		i = skipValue(b, i)
		if i < 0 {
			return nil, false
		}
		m.end = i
		ms = append(ms, m)
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return ms, true
		default:
			return nil, false
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the offset just past the JSON value starting at b[i],
// or -1. It trusts the text to be valid JSON and only tracks enough to find
// the end: strings with their escapes, and nesting.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				k := skipValue(b, j)
				if k < 0 {
					return -1
				}
				j = k - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) {
			c := b[j]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// stringValue decodes the JSON string literal b.
func stringValue(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' {
		return "", false
	}
	plain := true
	for _, c := range b[1 : len(b)-1] {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain {
		return string(b[1 : len(b)-1]), true
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", false
	}
	return s, true
}
