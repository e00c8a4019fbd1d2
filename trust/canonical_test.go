package trust

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"
)

// vectors is testdata/canonical_vectors.json, produced by real Python and
// node (testdata/gen_vectors.py).
type vectors struct {
	Seed    string `json:"seed"`
	Address string `json:"address"`
	Cases   []struct {
		Name       string            `json:"name"`
		Input      string            `json:"input"`
		Python     *string           `json:"python"`
		PythonUTF8 *string           `json:"python_utf8"`
		JavaScript *string           `json:"javascript"`
		Relay      *string           `json:"relay"`
		Signatures map[string]string `json:"signatures"`
	} `json:"cases"`
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/canonical_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) < 20 {
		t.Fatalf("only %d vectors", len(v.Cases))
	}
	return v
}

func TestCanonicalVectors(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			for _, f := range []struct {
				form Form
				want *string
			}{
				{FormPython, c.Python},
				{FormPythonUTF8, c.PythonUTF8},
				{FormJavaScript, c.JavaScript},
				{FormRelay, c.Relay},
			} {
				if f.want == nil {
					continue
				}
				got, err := CanonicalForm(json.RawMessage(c.Input), f.form)
				if err != nil {
					t.Fatalf("%s: %v", f.form, err)
				}
				if string(got) != *f.want {
					t.Errorf("%s:\n got  %s\n want %s", f.form, got, *f.want)
				}
			}
		})
	}
}

func TestCanonicalGoValues(t *testing.T) {
	type inner struct {
		Z string `json:"z"`
		A int    `json:"a"`
	}
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"map", map[string]any{"b": 1, "a": "x"}, `{"a":"x","b":1}`},
		{"struct nested", map[string]any{"k": inner{Z: "é<&>", A: 2}}, `{"k":{"a":2,"z":"\u00e9<&>"}}`},
		{"float integral", map[string]any{"f": 3.0, "g": 0.5, "h": 1e20, "i": 1e21}, `{"f":3,"g":0.5,"h":100000000000000000000,"i":1e+21}`},
		{"raw message keeps numbers", json.RawMessage(`{"f":3.0}`), `{"f":3.0}`},
		{"nil", nil, `null`},
		{"slice", []any{"😀", 1}, `["\ud83d\ude00",1]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonical(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			again, err := Canonical(json.RawMessage(got))
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("not idempotent: %s -> %s (%v)", got, again, err)
			}
		})
	}
}

func TestCanonicalRejects(t *testing.T) {
	for _, in := range []string{
		``, `{`, `{"a":1,"a":2}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `1e`, `+1`, `NaN`, `Infinity`,
		`"\x01"`, "\"\xff\"", `"\u12"`, `"\x"`, `{"a" 1}`, `{} {}`, `tru`, `[` + string(bytes.Repeat([]byte("["), 1000)),
		"\"\xed\xa0\x80\"", // a raw surrogate is not UTF-8
	} {
		if out, err := Canonical(json.RawMessage(in)); err == nil {
			t.Errorf("Canonical(%q) = %s, want an error", in, out)
		}
	}
	if _, err := Canonical(math.NaN()); err == nil {
		t.Error("NaN accepted")
	}
	if _, err := CanonicalForm(json.RawMessage(`{}`), Form(99)); err == nil {
		t.Error("unknown form accepted")
	}
	deep := bytes.Repeat([]byte("["), 999)
	deep = append(deep, bytes.Repeat([]byte("]"), 999)...)
	if _, err := Canonical(json.RawMessage(deep)); err != nil {
		t.Errorf("999 levels: %v", err)
	}
}

// TestPythonFloatRepr checks float formatting against values whose Python
// repr is known.
func TestPythonFloatRepr(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0, "0.0"}, {math.Copysign(0, -1), "-0.0"}, {1, "1.0"}, {-2.5, "-2.5"}, {0.1, "0.1"},
		{1e16, "1e+16"}, {1e15, "1000000000000000.0"}, {9999999999999998, "9999999999999998.0"},
		{1.5e-5, "1.5e-05"}, {1e-4, "0.0001"}, {1e-5, "1e-05"}, {1e100, "1e+100"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
		{5e-324, "5e-324"}, {123.456, "123.456"}, {math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"}, {math.NaN(), "NaN"},
	} {
		if got := string(appendPyFloat(nil, tc.f)); got != tc.want {
			t.Errorf("repr(%v) = %s, want %s", tc.f, got, tc.want)
		}
	}
}

func TestJSNumber(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"-0.0", "0"}, {"1.0", "1"}, {"1e21", "1e+21"}, {"1e20", "100000000000000000000"},
		{"1e-6", "0.000001"}, {"1e-7", "1e-7"}, {"123456789012345678901", "123456789012345680000"}, {"1.5e300", "1.5e+300"},
		{"1e400", "null"}, {"-1e400", "null"}, {"0.1", "0.1"}, {"-1.25e-10", "-1.25e-10"},
	} {
		if got := string(appendJSNumber(nil, tc.in)); got != tc.want {
			t.Errorf("JS(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestCompareJSKeys(t *testing.T) {
	// U+FF5A sorts after U+1F600 by code point, before it by UTF-16 unit.
	if compareJSKeys("\uff5a", "😀") <= 0 {
		t.Error("UTF-16 order: U+FF5A should sort after the surrogate pair")
	}
	if compareJSKeys("10", "2") <= 0 || compareJSKeys("2", "a") >= 0 || compareJSKeys("01", "1") <= 0 {
		t.Error("array-index keys should come first in numeric order")
	}
	if _, ok := arrayIndex(strconv.FormatUint(math.MaxUint32, 10)); ok {
		t.Error("2^32-1 is not an array index")
	}
}

func BenchmarkCanonical(b *testing.B) {
	raw := json.RawMessage(`{"prompt":"Translate 'hello' to Spanish, s'il vous plaît — 你好","to":"0x03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8","timestamp":1700000000}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonical(raw); err != nil {
			b.Fatal(err)
		}
	}
}
