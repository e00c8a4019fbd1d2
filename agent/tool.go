package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"

	"github.com/agenthost/agenthost/llm"
	"github.com/google/jsonschema-go/jsonschema"
)

// Tool is something the model can call. Most tools are made from plain Go
// functions with NewTool; packages with special needs (permission checks,
// streaming output) implement the interface directly.
type Tool interface {
	// Spec describes the tool to the model.
	Spec() llm.ToolSpec
	// Call runs the tool on the model's raw JSON arguments. An error becomes
	// a failed tool result that the model sees; it does not end the run.
	Call(ctx context.Context, args json.RawMessage) (string, error)
}

// ArgumentError is returned when the model's arguments do not match the
// tool's schema. The message is written for the model, which can retry.
type ArgumentError struct {
	Tool string
	Err  error
}

func (e *ArgumentError) Error() string {
	return fmt.Sprintf("invalid arguments for tool %s: %v", e.Tool, e.Err)
}

func (e *ArgumentError) Unwrap() error { return e.Err }

// PanicError reports a tool that panicked; the run continues.
type PanicError struct {
	Tool  string
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("tool %s panicked: %v", e.Tool, e.Value) }

type funcTool[T, R any] struct {
	spec     llm.ToolSpec
	resolved *jsonschema.Resolved
	fn       func(context.Context, T) (R, error)
}

// NewTool makes a tool from a Go function. The JSON schema of the
// arguments is derived from T, which must be a struct: exported fields are
// properties named by their json tags, fields without omitempty are required,
// and a `jsonschema:"..."` tag gives a property's description. The result is
// sent to the model as is when R is a string, and as JSON otherwise.
func NewTool[T, R any](name, description string, fn func(ctx context.Context, args T) (R, error)) (Tool, error) {
	if name == "" || strings.ContainsAny(name, " /") {
		return nil, fmt.Errorf("tool name %q: want a non-empty identifier", name)
	}
	if fn == nil {
		return nil, fmt.Errorf("tool %s: nil function", name)
	}
	if k := reflect.TypeFor[T]().Kind(); k != reflect.Struct {
		return nil, fmt.Errorf("tool %s: argument type must be a struct, got %s", name, k)
	}
	schema, err := jsonschema.For[T](nil)
	if err != nil {
		return nil, fmt.Errorf("tool %s: deriving schema: %w", name, err)
	}
	resolved, err := schema.Resolve(nil)
	if err != nil {
		return nil, fmt.Errorf("tool %s: resolving schema: %w", name, err)
	}
	raw, err := json.Marshal(schema)
	if err != nil {
		return nil, fmt.Errorf("tool %s: encoding schema: %w", name, err)
	}
	return &funcTool[T, R]{
		spec:     llm.ToolSpec{Name: name, Description: description, Parameters: raw},
		resolved: resolved,
		fn:       fn,
	}, nil
}

// MustTool is NewTool for package-level declarations; it panics on a bad
// argument type, which is a programming error.
func MustTool[T, R any](name, description string, fn func(ctx context.Context, args T) (R, error)) Tool {
	t, err := NewTool(name, description, fn)
	if err != nil {
		panic(err)
	}
	return t
}

func (t *funcTool[T, R]) Spec() llm.ToolSpec { return t.spec }

func (t *funcTool[T, R]) Call(ctx context.Context, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	var instance any
	if err := json.Unmarshal(raw, &instance); err != nil {
		return "", &ArgumentError{Tool: t.spec.Name, Err: fmt.Errorf("arguments are not valid JSON: %w", err)}
	}
	if err := t.resolved.Validate(instance); err != nil {
		return "", &ArgumentError{Tool: t.spec.Name, Err: err}
	}
	var args T
	if err := json.Unmarshal(raw, &args); err != nil {
		return "", &ArgumentError{Tool: t.spec.Name, Err: err}
	}
	r, err := t.fn(ctx, args)
	if err != nil {
		return "", err
	}
	return FormatResult(r)
}

// FormatResult turns a tool's Go result into the text the model reads.
func FormatResult(r any) (string, error) {
	switch v := r.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case fmt.Stringer:
		return v.String(), nil
	case nil:
		return "", nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encoding tool result: %w", err)
	}
	return string(b), nil
}

// callTool runs t, turning a panic into a *PanicError.
func callTool(ctx context.Context, t Tool, args json.RawMessage) (out string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Tool: t.Spec().Name, Value: v, Stack: debug.Stack()}
		}
	}()
	return t.Call(ctx, args)
}

// ErrUnknownTool is the error the model sees when it calls a tool the agent
// does not have.
var ErrUnknownTool = errors.New("unknown tool")
