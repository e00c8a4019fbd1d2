package trust

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds a small strict JSON parser that keeps what canonical forms
// need and encoding/json throws away: object keys in the order received,
// number literals as written, and lone UTF-16 surrogates from \u escapes
// (kept as their 3-byte WTF-8 encoding, so they can be escaped back exactly
// as Python and JavaScript do).

type jkind uint8

const (
	jNull jkind = iota
	jFalse
	jTrue
	jNumber
	jString
	jArray
	jObject
)

// jvalue is one parsed JSON value. For objects, keys and vals are parallel
// and keep the received order; for arrays, vals holds the elements.
type jvalue struct {
	kind jkind
	// s is the string (UTF-8, or WTF-8 when it holds lone surrogates) or the
	// number literal.
	s    string
	keys []string
	vals []*jvalue
	// start and end are the value's byte offsets in the parsed input.
	start, end int
}

// member returns the value of key in an object, or nil.
func (v *jvalue) member(key string) *jvalue {
	if v == nil || v.kind != jObject {
		return nil
	}
	for i, k := range v.keys {
		if k == key {
			return v.vals[i]
		}
	}
	return nil
}

// isFloat reports whether a number literal has a fraction or an exponent,
// which is what makes Python's json module read it as a float.
func (v *jvalue) isFloat() bool {
	for i := 0; i < len(v.s); i++ {
		switch v.s[i] {
		case '.', 'e', 'E':
			return true
		}
	}
	return false
}

// maxDepth bounds nesting. Python's json module gives up near 1000 levels
// (its recursion limit), so no real client signs anything deeper.
const maxDepth = 1000

var errJSON = errors.New("invalid JSON")

type jparser struct {
	data  []byte
	pos   int
	depth int
}

// parseJSON parses one JSON document strictly (RFC 8259, UTF-8, no
// duplicate keys in an object).
func parseJSON(data []byte) (*jvalue, error) {
	p := &jparser{data: data}
	p.space()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.data) {
		return nil, p.errorf("unexpected data after the value")
	}
	return v, nil
}

func (p *jparser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errJSON, p.pos, fmt.Sprintf(format, args...))
}

func (p *jparser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jparser) value() (*jvalue, error) {
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end of input")
	}
	start := p.pos
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &jvalue{kind: jString, s: s, start: start, end: p.pos}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", jTrue)
	case c == 'f':
		return p.literal("false", jFalse)
	case c == 'n':
		return p.literal("null", jNull)
	default:
		return nil, p.errorf("unexpected character %q", c)
	}
}

func (p *jparser) literal(word string, k jkind) (*jvalue, error) {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return nil, p.errorf("invalid literal")
	}
	start := p.pos
	p.pos += len(word)
	return &jvalue{kind: k, start: start, end: p.pos}, nil
}

func (p *jparser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf("nested deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *jparser) object() (*jvalue, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	v := &jvalue{kind: jObject, start: p.pos}
	p.pos++ // {
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		v.end = p.pos
		p.depth--
		return v, nil
	}
	var seen map[string]struct{}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errorf("expected a string key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		// Small objects check duplicates by scanning; big ones by a map.
		if len(v.keys) >= 8 {
			if seen == nil {
				seen = make(map[string]struct{}, 2*len(v.keys))
				for _, old := range v.keys {
					seen[old] = struct{}{}
				}
			}
			if _, dup := seen[k]; dup {
				return nil, p.errorf("duplicate key %q", clipKey(k))
			}
			seen[k] = struct{}{}
		} else {
			for _, old := range v.keys {
				if old == k {
					return nil, p.errorf("duplicate key %q", clipKey(k))
				}
			}
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errorf("expected ':'")
		}
		p.pos++
		p.space()
		val, err := p.value()
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, k)
		v.vals = append(v.vals, val)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unexpected end of input in object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			v.end = p.pos
			p.depth--
			return v, nil
		default:
			return nil, p.errorf("expected ',' or '}'")
		}
	}
}

func clipKey(k string) string {
	if len(k) > 40 {
		return k[:40] + "…"
	}
	return k
}

func (p *jparser) array() (*jvalue, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	v := &jvalue{kind: jArray, start: p.pos}
	p.pos++ // [
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		v.end = p.pos
		p.depth--
		return v, nil
	}
	for {
		p.space()
		val, err := p.value()
		if err != nil {
			return nil, err
		}
		v.vals = append(v.vals, val)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unexpected end of input in array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			v.end = p.pos
			p.depth--
			return v, nil
		default:
			return nil, p.errorf("expected ',' or ']'")
		}
	}
}

func (p *jparser) number() (*jvalue, error) {
	start := p.pos
	d := p.data
	i := p.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return nil, p.errorf("invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			p.pos = i
			return nil, p.errorf("invalid number: no digits after '.'")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			p.pos = i
			return nil, p.errorf("invalid number: no digits in exponent")
		}
	}
	p.pos = i
	return &jvalue{kind: jNumber, s: string(d[start:i]), start: start, end: i}, nil
}

// str parses a string token starting at the opening quote.
func (p *jparser) str() (string, error) {
	p.pos++ // "
	d := p.data
	// Fast path: no escapes.
	i := p.pos
	for i < len(d) && d[i] != '"' && d[i] != '\\' && d[i] >= 0x20 {
		i++
	}
	if i < len(d) && d[i] == '"' {
		seg := d[p.pos:i]
		if !utf8.Valid(seg) {
			return "", p.errorf("string is not valid UTF-8")
		}
		p.pos = i + 1
		return string(seg), nil
	}
	buf := make([]byte, 0, i-p.pos+16)
	for {
		start := p.pos
		for p.pos < len(d) && d[p.pos] != '"' && d[p.pos] != '\\' && d[p.pos] >= 0x20 {
			p.pos++
		}
		seg := d[start:p.pos]
		if !utf8.Valid(seg) {
			return "", p.errorf("string is not valid UTF-8")
		}
		buf = append(buf, seg...)
		if p.pos >= len(d) {
			return "", p.errorf("unterminated string")
		}
		switch c := d[p.pos]; {
		case c == '"':
			p.pos++
			return string(buf), nil
		case c < 0x20:
			return "", p.errorf("control character in string")
		}
		// Backslash escape.
		p.pos++
		if p.pos >= len(d) {
			return "", p.errorf("unterminated escape")
		}
		e := d[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				if r < 0xDC00 && p.pos+6 <= len(d) && d[p.pos] == '\\' && d[p.pos+1] == 'u' {
					save := p.pos
					p.pos += 2
					r2, err := p.hex4()
					if err == nil && r2 >= 0xDC00 && r2 <= 0xDFFF {
						buf = utf8.AppendRune(buf, utf16.DecodeRune(r, r2))
						continue
					}
					p.pos = save
				}
				buf = appendSurrogate(buf, r)
				continue
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.errorf("invalid escape '\\%c'", e)
		}
	}
}

func (p *jparser) hex4() (rune, error) {
	if p.pos+4 > len(p.data) {
		return 0, p.errorf("short \\u escape")
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, p.errorf("invalid \\u escape")
		}
	}
	p.pos += 4
	return r, nil
}

// appendSurrogate appends a lone surrogate code point in its generalized
// UTF-8 (WTF-8) form: 0xED, 0xA0–0xBF, 0x80–0xBF.
func appendSurrogate(buf []byte, r rune) []byte {
	return append(buf, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
}

// decodeWTF8 decodes the code point at the start of s, reporting lone
// surrogates (which utf8 rejects) as themselves. Invalid bytes decode as
// U+FFFD with width 1.
func decodeWTF8(s string) (rune, int) {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n == 1 && len(s) >= 3 && s[0] == 0xED && s[1] >= 0xA0 && s[1] <= 0xBF && s[2] >= 0x80 && s[2] <= 0xBF {
		return rune(s[0]&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	}
	return r, n
}
