// Package httpjson is the one way agenthost's JSON APIs (the platform's
// /api/v1 and the coding runtime's control API) read and write JSON over
// HTTP: a strict request reader that names the offending field, a writer,
// and an error type carrying its HTTP status, so handlers return errors and
// a single place turns them into `{"error": "..."}` responses.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// MaxBody is the largest JSON request body accepted; larger is 413.
const MaxBody = 1 << 20

// Error is an error with the HTTP status and the message the client sees.
// Msg must be safe to show: never a secret, never an internal detail.
type Error struct {
	Status int
	Msg    string
	Err    error // the cause, for logs and errors.Is; may be nil
}

// Error includes the cause, for logs; clients see only Msg.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap exposes the cause to errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// BadRequest is Errorf(400, ...).
func BadRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, format, args...)
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
}

// Write writes v as a JSON response with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// WriteError writes an error response.
func WriteError(w http.ResponseWriter, status int, msg string) {
	Write(w, status, ErrorBody{Error: msg})
}

// Nullable is a request field that distinguishes absent, null and a value,
// for PATCH bodies where null clears a field.
type Nullable[T any] struct {
	Set   bool // the field was present
	Null  bool // it was null
	Value T
}

// UnmarshalJSON implements json.Unmarshaler.
func (n *Nullable[T]) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Null = true
		return nil
	}
	return json.Unmarshal(b, &n.Value)
}

// Read decodes the request's JSON object body into v, a pointer to a
// struct, strictly: the body must be one JSON object of at most MaxBody
// bytes, every key must be a field of v (by its json tag), and every value
// must fit its field. The errors are *Error, 400 naming the field or 413.
func Read(w http.ResponseWriter, r *http.Request, v any) error {
	if r.Body == nil || r.Body == http.NoBody {
		return BadRequest("request body is empty; send a JSON object")
	}
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	b, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body is larger than %d bytes", MaxBody)}
		}
		return &Error{Status: http.StatusBadRequest, Msg: "reading request body failed", Err: err}
	}
	return Decode(b, v)
}

// Decode is Read's decoding of a body already in memory.
func Decode(b []byte, v any) error {
	if len(strings.TrimSpace(string(b))) == 0 {
		return BadRequest("request body is empty; send a JSON object")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return BadRequest("request body must be a JSON object")
		}
		return &Error{Status: http.StatusBadRequest, Msg: "request body is not valid JSON", Err: err}
	}
	if obj == nil { // the body was `null`
		return BadRequest("request body must be a JSON object")
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("httpjson.Decode: want a pointer to a struct, got %T", v))
	}
	fields := fieldsOf(rv.Elem().Type())
	// Report keys in a stable order: the first unknown or bad one in the
	// struct's order, then unknown keys alphabetically.
	for _, f := range fields.order {
		raw, ok := obj[f.name]
		if !ok {
			continue
		}
		dst := rv.Elem().FieldByIndex(f.index).Addr().Interface()
		if err := json.Unmarshal(raw, dst); err != nil {
			return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("field %q must be %s", f.name, describe(f.typ)), Err: err}
		}
	}
	var unknown []string
	for k := range obj {
		if _, ok := fields.byName[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return BadRequest("unknown field %q", unknown[0])
	}
	return nil
}

type field struct {
	name  string
	index []int
	typ   reflect.Type
}

type structFields struct {
	order  []field
	byName map[string]field
}

var fieldCache sync.Map // reflect.Type → structFields

func fieldsOf(t reflect.Type) structFields {
	if c, ok := fieldCache.Load(t); ok {
		return c.(structFields)
	}
	fs := structFields{byName: map[string]field{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f := field{name: name, index: sf.Index, typ: sf.Type}
		fs.order = append(fs.order, f)
		fs.byName[name] = f
	}
	fieldCache.Store(t, fs)
	return fs
}

// describe names a Go type the way a JSON client thinks of it.
func describe(t reflect.Type) string {
	if t.Kind() == reflect.Struct && strings.HasPrefix(t.Name(), "Nullable[") {
		return describe(t.Field(2).Type) + " or null"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array of " + plural(t.Elem())
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a JSON value"
}

func plural(t reflect.Type) string {
	d := describe(t)
	if strings.HasPrefix(d, "an array") {
		return "arrays" + strings.TrimPrefix(d, "an array")
	}
	d = strings.TrimPrefix(strings.TrimPrefix(d, "a "), "an ")
	return d + "s"
}
