package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"

	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/store"
)

// The one way the host reads and writes JSON and turns errors into
// responses: handlers return errors, serveHTTP writes them.

// httpError is the host's name for httpjson.Error: an error with the
// status and the message the client sees.
type httpError = httpjson.Error

// errorf is httpjson.Errorf.
func errorf(status int, format string, args ...any) *httpError {
	return httpjson.Errorf(status, format, args...)
}

// errorBody is every error response's body, {"error": "..."}.
type errorBody = httpjson.ErrorBody

// writeJSON writes v with status, as every agenthost JSON API does.
func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

// classify maps an error to the status and message a client sees; the
// same table serves HTTP responses and WebSocket ERROR frames.
func classify(err error) (status int, msg string, retryAfter int) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.Status, he.Msg, he.RetryAfter
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, err.Error(), 0
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, err.Error(), 0
	case errors.Is(err, ErrBusy):
		return http.StatusConflict, ErrBusy.Error(), 0
	case errors.Is(err, ErrOverloaded):
		return http.StatusServiceUnavailable, ErrOverloaded.Error(), 1
	case errors.Is(err, engine.ErrShuttingDown):
		return http.StatusServiceUnavailable, ErrShuttingDown.Error(), 5
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not found", 0
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return 499, "request cancelled", 0
	}
	return http.StatusInternalServerError, "internal error", 0
}

// handlerFunc is an HTTP handler that returns its error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// wrap turns a handlerFunc into an http.Handler, writing its error.
func (s *Server) wrap(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg, retry := classify(err)
	switch {
	case status == 499:
		return // the client is gone
	case status == http.StatusServiceUnavailable:
		// Shutting down, not started or overloaded: the server works as
		// designed; the access log has the status.
		s.log.InfoContext(r.Context(), "request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	case status >= 500:
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	default:
		s.log.DebugContext(r.Context(), "request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	writeJSON(w, status, errorBody{Error: msg})
}

// readBody reads a request body of at most limit bytes: 413 beyond.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "request body is larger than the limit of %s", sizeString(limit))
		}
		return nil, &httpError{Status: http.StatusBadRequest, Msg: "reading the request body failed", Err: err}
	}
	return b, nil
}

// jsonError translates encoding/json errors into messages naming fields.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field == "" {
			return &httpError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("request body must be %s, not %s", typeName(te.Type), te.Value), Err: err}
		}
		return &httpError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("field %q must be %s, not %s", te.Field, typeName(te.Type), te.Value), Err: err}
	case errors.As(err, &se):
		return &httpError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("request body is not valid JSON: %s at byte %d", se.Error(), se.Offset), Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &httpError{Status: http.StatusBadRequest, Msg: "request body is not valid JSON: it ends too early", Err: err}
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		return &httpError{Status: http.StatusBadRequest, Msg: fe.Error(), Err: err}
	}
	return &httpError{Status: http.StatusBadRequest, Msg: "request body is not valid: " + err.Error(), Err: err}
}

// fieldError is a validation error from a custom decoder, naming its field.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return fmt.Sprintf("field %q %s", e.field, e.msg) }

func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "JSON"
		}
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
