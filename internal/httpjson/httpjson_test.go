package httpjson

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type req struct {
	Name    string           `json:"name"`
	Desc    *string          `json:"description,omitempty"`
	Count   int              `json:"count"`
	On      bool             `json:"on"`
	Tags    []string         `json:"tags"`
	Answers [][]string       `json:"answers"`
	Note    Nullable[string] `json:"note"`
	Skip    string           `json:"-"`
	Raw     string
}

func decode(body string) (req, error) {
	var v req
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	return v, Read(httptest.NewRecorder(), r, &v)
}

func TestRead(t *testing.T) {
	v, err := decode(`{"name":"a","description":"d","count":3,"on":true,"tags":["x"],"answers":[["Simple"]],"note":"n","Raw":"r"}`)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "a" || *v.Desc != "d" || v.Count != 3 || !v.On || v.Tags[0] != "x" || v.Answers[0][0] != "Simple" ||
		!v.Note.Set || v.Note.Null || v.Note.Value != "n" || v.Raw != "r" {
		t.Fatalf("decoded %+v", v)
	}
	v, err = decode(`{"note":null}`)
	if err != nil || !v.Note.Set || !v.Note.Null {
		t.Fatalf("null note = %+v, %v", v.Note, err)
	}
	v, err = decode(`{}`)
	if err != nil || v.Note.Set {
		t.Fatalf("absent note = %+v, %v", v.Note, err)
	}
}

func TestReadErrors(t *testing.T) {
	for body, want := range map[string]string{
		``:                      "request body is empty; send a JSON object",
		`   `:                   "request body is empty; send a JSON object",
		`{`:                     "request body is not valid JSON",
		`{"name":"a"} {}`:       "request body is not valid JSON",
		`[1]`:                   "request body must be a JSON object",
		`"x"`:                   "request body must be a JSON object",
		`null`:                  "request body must be a JSON object",
		`{"name":1}`:            `field "name" must be a string`,
		`{"count":"1"}`:         `field "count" must be an integer`,
		`{"count":1.5}`:         `field "count" must be an integer`,
		`{"on":"yes"}`:          `field "on" must be a boolean`,
		`{"tags":"x"}`:          `field "tags" must be an array of strings`,
		`{"answers":["x"]}`:     `field "answers" must be an array of arrays of strings`,
		`{"note":5}`:            `field "note" must be a string or null`,
		`{"description":false}`: `field "description" must be a string`,
		`{"zeta":1,"alpha":2}`:  `unknown field "alpha"`,
		`{"Skip":"x"}`:          `unknown field "Skip"`,
		`{"NAME":"x"}`:          `unknown field "NAME"`,
	} {
		_, err := decode(body)
		var he *Error
		if !errors.As(err, &he) || he.Status != 400 || he.Msg != want {
			t.Errorf("body %q: err = %#v, want 400 %q", body, err, want)
		}
	}
}

func TestReadTooLarge(t *testing.T) {
	body := `{"name":"` + strings.Repeat("x", MaxBody) + `"}`
	_, err := decode(body)
	var he *Error
	if !errors.As(err, &he) || he.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %v, want 413", err)
	}
	r := httptest.NewRequest("POST", "/", nil)
	r.Body = http.NoBody
	if err := Read(httptest.NewRecorder(), r, &req{}); !errors.As(err, &he) || he.Status != 400 {
		t.Fatalf("no body: %v", err)
	}
}

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, 404, "agent not found")
	if w.Code != 404 || w.Header().Get("Content-Type") != "application/json; charset=utf-8" || w.Body.String() != `{"error":"agent not found"}`+"\n" {
		t.Fatalf("WriteError = %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body.String())
	}
	w = httptest.NewRecorder()
	Write(w, 200, func() {})
	if w.Code != 500 {
		t.Fatalf("unmarshalable value: %d", w.Code)
	}
	e := &Error{Status: 400, Msg: "m", Err: errors.New("cause")}
	if e.Error() != "m: cause" || !errors.Is(e, e.Err) || Errorf(409, "x %d", 1).Error() != "x 1" {
		t.Fatal("Error formatting")
	}
}

// FuzzDecode: any body yields either a decoded value or a 400, never a
// panic or another status, and an accepted body re-encodes.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"name":"a"}`, `{"note":null,"tags":["x"]}`, `{"answers":[["a","b"],[]]}`, `[]`, `{"count":1e400}`, "{\"name\":\"\xff\"}", `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v req
		err := Decode(b, &v)
		if err != nil {
			var he *Error
			if !errors.As(err, &he) || he.Status != 400 || he.Msg == "" {
				t.Fatalf("Decode(%q) = %#v", b, err)
			}
			return
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("re-encoding %+v: %v", v, err)
		}
	})
}
