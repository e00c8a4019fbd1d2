// Package platformtest starts real platforms for tests: in-process, on
// 127.0.0.1:0, over a real SQLite file or a PostgreSQL schema of their own,
// with the platform's logs captured so tests can check what was (and was
// never) written to them.
package platformtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/auth"
	"github.com/agenthost/agenthost/internal/platform/store/postgres/pgtest"
	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/testutil"
)

// Options configures Start.
type Options struct {
	// Driver runs runtimes; nil is NoDriver.
	Driver runtime.Driver
	// Postgres selects a fresh PostgreSQL schema instead of SQLite (the
	// test is skipped when no PostgreSQL is configured, outside CI).
	Postgres bool
	// DataDir is reused across Start calls to simulate a restart; empty
	// is a new temporary directory.
	DataDir string
	// DSN is reused across Start calls with Postgres; empty makes one.
	DSN string
	// Agents configures the agent manager.
	Agents agents.Config
	// Logs receives the platform's logs; nil makes a new buffer.
	Logs *Buffer
	// Configure, when set, adjusts the platform's Config last.
	Configure func(*platform.Config)
}

// Env is a running platform.
type Env struct {
	Server *platform.Server
	URL    string
	Logs   *Buffer
	// DataDir and DSN start the next platform on the same state.
	DataDir, DSN string
	stopped      bool
}

// Start starts a platform and shuts it down when the test ends.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	if o.Driver == nil {
		o.Driver = NoDriver{}
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Postgres && o.DSN == "" {
		o.DSN = pgtest.DSN(t)
	}
	if !o.Postgres {
		o.DSN = ""
	}
	if o.Logs == nil {
		o.Logs = &Buffer{}
	}
	log := slog.New(slog.NewTextHandler(o.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := platform.Config{
		DataDir: o.DataDir, Database: o.DSN, Driver: o.Driver, Logger: log, Agents: o.Agents,
		Getenv: func(string) string { return "" },
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	srv, err := platform.New(cfg)
	if err != nil {
		t.Fatalf("platform.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Server: srv, URL: "http://" + ln.Addr().String(), Logs: o.Logs, DataDir: o.DataDir, DSN: o.DSN}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		env.Stop(t)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return env
}

// Stop shuts the platform down (runtimes keep running, as in production).
func (e *Env) Stop(t testing.TB) {
	t.Helper()
	if e.stopped {
		return
	}
	e.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Server.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// WaitReconciled waits until the platform has reconciled its agents.
func (e *Env) WaitReconciled(t testing.TB) {
	t.Helper()
	select {
	case <-e.Server.Reconciled():
	case <-time.After(2 * time.Minute):
		t.Fatal("reconcile did not finish")
	}
}

// Token issues a token for the organization named org (created on first
// use).
func (e *Env) Token(t testing.TB, org string) string {
	t.Helper()
	tok, _, _, err := auth.Issue(context.Background(), e.Server.Store(), org, "test", time.Now(), ids.New)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Client returns a client authenticating with token ("" for none).
func (e *Env) Client(token string) *Client { return &Client{Base: e.URL, Token: token} }

// Client calls a platform.
type Client struct {
	Base, Token string
}

// Response is a response read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends a request. body is JSON-encoded unless it is a string or
// []byte, sent as is.
func (c *Client) Do(t testing.TB, method, path string, body any) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// Every answer a test reads must be what the OpenAPI document says.
	for _, msg := range CheckResponse(req, resp.StatusCode, resp.Header, b) {
		t.Errorf("%s %s: %d answer does not match the OpenAPI document: %s\n%s", method, path, resp.StatusCode, msg, b)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// JSON decodes the body as an object.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.Status, err, r.Body)
	}
	return m
}

// Want fails the test unless the status is want; it returns the body as a
// JSON object.
func (r *Response) Want(t testing.TB, want int) map[string]any {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
	return r.JSON(t)
}

// WantError checks an error response: its status, the JSON error body and
// (when not empty) a substring of the message.
func (r *Response) WantError(t testing.TB, status int, contains string, extra ...string) {
	t.Helper()
	m := r.Want(t, status)
	msg, ok := m["error"].(string)
	if !ok || len(m) != 1+len(extra) || msg == "" {
		t.Fatalf("error body %s: want exactly {\"error\": \"...\"} and the fields %q", r.Body, extra)
	}
	for _, k := range extra {
		if _, ok := m[k]; !ok {
			t.Fatalf("error body %s: no field %q", r.Body, k)
		}
	}
	if contains != "" && !strings.Contains(msg, contains) {
		t.Fatalf("error %q does not contain %q", msg, contains)
	}
}

// Buffer is a goroutine-safe log sink that a test can wait on
// (testutil.Buffer).
type Buffer = testutil.Buffer

// NoDriver is a runtime.Driver for tests that provision nothing: every
// call fails.
type NoDriver struct{}

var errNoDriver = errors.New("platformtest: this test has no runtime driver")

// Name implements runtime.Driver.
func (NoDriver) Name() string { return "none" }

// Start implements runtime.Driver.
func (NoDriver) Start(context.Context, runtime.Spec) (*runtime.Handle, error) {
	return nil, errNoDriver
}

// Wait implements runtime.Driver.
func (NoDriver) Wait(context.Context, *runtime.Handle) (runtime.ExitResult, error) {
	return runtime.ExitResult{}, runtime.ErrNotFound
}

// Stop implements runtime.Driver.
func (NoDriver) Stop(context.Context, *runtime.Handle, time.Duration) error { return nil }

// Destroy implements runtime.Driver.
func (NoDriver) Destroy(context.Context, *runtime.Handle) error { return nil }

// Inspect implements runtime.Driver.
func (NoDriver) Inspect(context.Context, *runtime.Handle) (runtime.Status, error) {
	return runtime.Status{State: runtime.StateUnknown}, nil
}

// Recover implements runtime.Driver.
func (NoDriver) Recover(context.Context, *runtime.Handle) error { return runtime.ErrNotFound }
