package trust

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Form is one byte-exact JSON encoding that existing clients sign. The same
// JSON value has one encoding per form.
type Form int

// The canonical forms. A signed payload verifies if its signature matches
// any of FormPython, FormPythonUTF8 or FormJavaScript; FormRelay is what
// relay ANNOUNCE signatures cover.
const (
	// FormPython is json.dumps(v, sort_keys=True, separators=(',', ':')):
	// keys sorted at every level, no spaces, non-ASCII escaped as \uXXXX
	// (astral characters as surrogate pairs), and Python's number formatting.
	// It is the form this package signs.
	FormPython Form = iota + 1
	// FormPythonUTF8 is FormPython with ensure_ascii=False: non-ASCII text
	// is written as UTF-8.
	FormPythonUTF8
	// FormJavaScript is JSON.stringify of an object whose top-level keys
	// were inserted in sorted order: nested objects keep the key order they
	// were received in, text is UTF-8, and numbers are JavaScript numbers.
	FormJavaScript
	// FormRelay is json.dumps(v, sort_keys=True) with the default separators
	// ", " and ": ", ASCII-escaped: the form relay ANNOUNCE messages sign.
	FormRelay
)

// SignatureForms are the forms a payload signature is checked against, in
// order.
var SignatureForms = []Form{FormPython, FormPythonUTF8, FormJavaScript}

// String names the form.
func (f Form) String() string {
	switch f {
	case FormPython:
		return "python"
	case FormPythonUTF8:
		return "python-utf8"
	case FormJavaScript:
		return "javascript"
	case FormRelay:
		return "relay"
	}
	return "Form(" + strconv.Itoa(int(f)) + ")"
}

// Canonical returns the canonical JSON (FormPython) of v. A json.RawMessage
// is canonicalised from its bytes; any other value is first encoded with
// encoding/json. Canonical is idempotent: the canonical JSON of canonical
// JSON is itself.
func Canonical(v any) ([]byte, error) { return CanonicalForm(v, FormPython) }

// CanonicalForm returns the encoding of v in form f. Pass a json.RawMessage
// to keep the key order of nested objects, which FormJavaScript needs.
// Duplicate object keys, invalid UTF-8 and nesting deeper than 1000 levels
// are errors.
func CanonicalForm(v any, f Form) ([]byte, error) {
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		raw = x
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("canonical JSON: %w", err)
		}
		raw = b
	}
	tree, err := parseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	return encodeForm(nil, tree, f)
}

// encodeForm appends the encoding of v in form f to buf.
func encodeForm(buf []byte, v *jvalue, f Form) ([]byte, error) {
	switch f {
	case FormPython, FormPythonUTF8, FormJavaScript, FormRelay:
	default:
		return nil, fmt.Errorf("canonical JSON: unknown form %d", int(f))
	}
	e := encoder{buf: buf, form: f}
	e.value(v, 0)
	return e.buf, nil
}

type encoder struct {
	buf  []byte
	form Form
}

func (e *encoder) value(v *jvalue, depth int) {
	switch v.kind {
	case jNull:
		e.buf = append(e.buf, "null"...)
	case jTrue:
		e.buf = append(e.buf, "true"...)
	case jFalse:
		e.buf = append(e.buf, "false"...)
	case jNumber:
		if e.form == FormJavaScript {
			e.buf = appendJSNumber(e.buf, v.s)
		} else {
			e.buf = appendPyNumber(e.buf, v)
		}
	case jString:
		if e.form == FormPython || e.form == FormRelay {
			e.buf = appendASCIIString(e.buf, v.s)
		} else {
			e.buf = appendUTF8String(e.buf, v.s)
		}
	case jArray:
		e.buf = append(e.buf, '[')
		for i, el := range v.vals {
			if i > 0 {
				e.comma()
			}
			e.value(el, depth+1)
		}
		e.buf = append(e.buf, ']')
	case jObject:
		e.buf = append(e.buf, '{')
		for i, j := range e.order(v, depth) {
			if i > 0 {
				e.comma()
			}
			e.buf = e.key(v.keys[j])
			if e.form == FormRelay {
				e.buf = append(e.buf, ':', ' ')
			} else {
				e.buf = append(e.buf, ':')
			}
			e.value(v.vals[j], depth+1)
		}
		e.buf = append(e.buf, '}')
	}
}

func (e *encoder) key(k string) []byte {
	if e.form == FormPython || e.form == FormRelay {
		return appendASCIIString(e.buf, k)
	}
	return appendUTF8String(e.buf, k)
}

func (e *encoder) comma() {
	if e.form == FormRelay {
		e.buf = append(e.buf, ',', ' ')
	} else {
		e.buf = append(e.buf, ',')
	}
}

// order returns the order in which an object's members are written.
func (e *encoder) order(v *jvalue, depth int) []int {
	idx := make([]int, len(v.keys))
	for i := range idx {
		idx[i] = i
	}
	switch {
	case e.form != FormJavaScript:
		// Python sorts str keys by code point; UTF-8 (and WTF-8) byte order
		// is code point order.
		slices.SortFunc(idx, func(a, b int) int { return strings.Compare(v.keys[a], v.keys[b]) })
	case depth == 0:
		// JavaScript's Array.prototype.sort compares UTF-16 code units, and
		// an object then lists integer-like keys first, in numeric order,
		// whatever order they were inserted in.
		slices.SortFunc(idx, func(a, b int) int { return compareJSKeys(v.keys[a], v.keys[b]) })
	}
	return idx
}

// compareJSKeys orders keys as JSON.stringify lists the properties of an
// object built by inserting them in sorted order.
func compareJSKeys(a, b string) int {
	ia, aIdx := arrayIndex(a)
	ib, bIdx := arrayIndex(b)
	switch {
	case aIdx && bIdx:
		return compareUint(ia, ib)
	case aIdx:
		return -1
	case bIdx:
		return 1
	}
	return compareUTF16(a, b)
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// arrayIndex reports whether s is a canonical array index in JavaScript:
// the decimal form of an integer in [0, 2³²-2].
func arrayIndex(s string) (uint64, bool) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > math.MaxUint32-1 {
		return 0, false
	}
	return n, true
}

// compareUTF16 compares strings by their UTF-16 code units.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := decodeWTF8(a)
		rb, nb := decodeWTF8(b)
		if ra != rb {
			ua, ub := firstUnit(ra), firstUnit(rb)
			if ua != ub {
				return compareUint(uint64(ua), uint64(ub))
			}
			// Same high surrogate: compare the low ones.
			_, la := utf16.EncodeRune(ra)
			_, lb := utf16.EncodeRune(rb)
			return compareUint(uint64(la), uint64(lb))
		}
		a, b = a[na:], b[nb:]
	}
	return compareUint(uint64(len(a)), uint64(len(b)))
}

func firstUnit(r rune) rune {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return hi
	}
	return r
}

const hexDigits = "0123456789abcdef"

func appendU4(buf []byte, r rune) []byte {
	return append(buf, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}

// appendControl appends the escape Python and JavaScript both use for a
// character below U+0020, or for '"' and '\'.
func appendControl(buf []byte, c byte) []byte {
	switch c {
	case '"':
		return append(buf, '\\', '"')
	case '\\':
		return append(buf, '\\', '\\')
	case '\b':
		return append(buf, '\\', 'b')
	case '\f':
		return append(buf, '\\', 'f')
	case '\n':
		return append(buf, '\\', 'n')
	case '\r':
		return append(buf, '\\', 'r')
	case '\t':
		return append(buf, '\\', 't')
	}
	return appendU4(buf, rune(c))
}

// appendASCIIString writes s as Python's ensure_ascii=True does: only
// printable ASCII (U+0020–U+007E) is written as is.
func appendASCIIString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c < 0x20:
				buf = appendControl(buf, c)
			case c == 0x7F:
				buf = appendU4(buf, 0x7F)
			default:
				buf = append(buf, c)
			}
			i++
			continue
		}
		r, n := decodeWTF8(s[i:])
		i += n
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			buf = appendU4(appendU4(buf, hi), lo)
		} else {
			buf = appendU4(buf, r)
		}
	}
	return append(buf, '"')
}

// appendUTF8String writes s as Python's ensure_ascii=False and JavaScript's
// JSON.stringify do: only '"', '\' and control characters are escaped (and
// lone surrogates, as JSON.stringify does).
func appendUTF8String(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\\' || c < 0x20 {
				buf = append(buf, s[start:i]...)
				buf = appendControl(buf, c)
				start = i + 1
			}
			i++
			continue
		}
		r, n := decodeWTF8(s[i:])
		if n == 3 && utf16.IsSurrogate(r) || r == utf8.RuneError && n == 1 {
			buf = append(buf, s[start:i]...)
			if n == 1 {
				r = utf8.RuneError
			}
			buf = appendU4(buf, r)
			start = i + n
		}
		i += n
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// appendPyNumber writes a number literal as Python's json module would after
// reading it: integers keep their digits (json reads them as int), other
// literals are floats written by float.__repr__.
func appendPyNumber(buf []byte, v *jvalue) []byte {
	if !v.isFloat() {
		if v.s == "-0" {
			return append(buf, '0')
		}
		return append(buf, v.s...)
	}
	f, _ := strconv.ParseFloat(v.s, 64) // syntax already checked; overflow gives ±Inf
	return appendPyFloat(buf, f)
}

// appendPyFloat writes f as Python's repr(float) does: the shortest digits
// that round-trip, positional notation when the decimal exponent is in
// [-4, 16), scientific otherwise ("1e+16", "1.5e-05"), and ".0" on
// integral values. Infinities and NaN are written as json.dumps writes them.
func appendPyFloat(buf []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	case math.IsInf(f, 1):
		return append(buf, "Infinity"...)
	case math.IsInf(f, -1):
		return append(buf, "-Infinity"...)
	}
	if math.Signbit(f) {
		buf = append(buf, '-')
		f = -f
	}
	digits, decpt := shortestDigits(f)
	k := len(digits)
	if decpt <= -4 || decpt > 16 {
		buf = append(buf, digits[0])
		if k > 1 {
			buf = append(buf, '.')
			buf = append(buf, digits[1:]...)
		}
		buf = append(buf, 'e')
		exp := decpt - 1
		if exp < 0 {
			buf = append(buf, '-')
			exp = -exp
		} else {
			buf = append(buf, '+')
		}
		if exp < 10 {
			buf = append(buf, '0')
		}
		return strconv.AppendInt(buf, int64(exp), 10)
	}
	switch {
	case decpt <= 0:
		buf = append(buf, '0', '.')
		for range -decpt {
			buf = append(buf, '0')
		}
		buf = append(buf, digits...)
	case decpt < k:
		buf = append(buf, digits[:decpt]...)
		buf = append(buf, '.')
		buf = append(buf, digits[decpt:]...)
	default:
		buf = append(buf, digits...)
		for range decpt - k {
			buf = append(buf, '0')
		}
		buf = append(buf, '.', '0')
	}
	return buf
}

// appendJSNumber writes a number literal as JavaScript reads and then
// stringifies it (Number::toString; non-finite numbers become null).
func appendJSNumber(buf []byte, lit string) []byte {
	f, _ := strconv.ParseFloat(lit, 64)
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(buf, "null"...)
	}
	if f == 0 {
		return append(buf, '0')
	}
	if f < 0 {
		buf = append(buf, '-')
		f = -f
	}
	digits, n := shortestDigits(f)
	k := len(digits)
	switch {
	case k <= n && n <= 21:
		buf = append(buf, digits...)
		for range n - k {
			buf = append(buf, '0')
		}
	case 0 < n && n <= 21:
		buf = append(buf, digits[:n]...)
		buf = append(buf, '.')
		buf = append(buf, digits[n:]...)
	case -6 < n && n <= 0:
		buf = append(buf, '0', '.')
		for range -n {
			buf = append(buf, '0')
		}
		buf = append(buf, digits...)
	default:
		buf = append(buf, digits[0])
		if k > 1 {
			buf = append(buf, '.')
			buf = append(buf, digits[1:]...)
		}
		buf = append(buf, 'e')
		if n-1 < 0 {
			buf = append(buf, '-')
			buf = strconv.AppendInt(buf, int64(1-n), 10)
		} else {
			buf = append(buf, '+')
			buf = strconv.AppendInt(buf, int64(n-1), 10)
		}
	}
	return buf
}

// shortestDigits returns the shortest decimal digits that round-trip to the
// non-negative finite f, and the position of the decimal point: f equals
// 0.d₁d₂…×10^decpt.
func shortestDigits(f float64) (digits []byte, decpt int) {
	var tmp [32]byte
	b := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64) // d.ddde±XX
	e := strings.IndexByte(string(b), 'e')
	exp, _ := strconv.Atoi(string(b[e+1:]))
	digits = make([]byte, 0, e)
	for _, c := range b[:e] {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	return digits, exp + 1
}
