package host_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/internal/testutil/testrelay"
)

// TestLifecycle: New starts nothing but its database and the Server refuses requests until
// Start; Start begins the sweeper, the relay announcer and the reload
// watcher; Shutdown stops every goroutine New and Start began and closes
// the database; a shut-down Server answers 503 and cannot restart.
func TestLifecycle(t *testing.T) {
	r := testrelay.Start(t, "127.0.0.1:0")
	ctx := t.Context()
	before := goleak.IgnoreCurrent()

	dir := t.TempDir()
	s, err := host.New(ctx, factory("offline/demo"), host.WithDir(dir), host.WithCoDir(dir+"/.co"), host.WithLogger(quietLogger()),
		host.WithRelayURL(r.URL()), host.WithReload(true), host.WithSweepInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// The open database has its own goroutines (database/sql's connection
	// opener, the store's group-commit writer); nothing else runs yet.
	if err := goleak.Find(before, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreAnyFunction("github.com/agenthost/agenthost/internal/store/sqlite.(*Store).loop")); err != nil {
		t.Errorf("New started goroutines: %v", err)
	}
	rec := newRecorder()
	s.ServeHTTP(rec, mustRequest("GET", "/health"))
	if rec.Code != 503 || !containsJSONError(rec.Body.String(), host.ErrNotStarted.Error()) {
		t.Fatalf("before Start: %d %s", rec.Code, rec.Body)
	}

	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	ts := httptest.NewServer(s)
	code, m, _ := do(t, "POST", ts.URL+"/input", map[string]any{"prompt": "use add on 2 and 3"})
	wantStatus(t, code, 200, m)
	testutil.Eventually(t, 10*time.Second, "the relay announcer Start starts", func() bool {
		st, _, _ := s.RelayStatus()
		return st.Announced
	})

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines left after Shutdown: %v", err)
	}
	rec = newRecorder()
	s.ServeHTTP(rec, mustRequest("GET", "/health"))
	if rec.Code != 503 || !containsJSONError(rec.Body.String(), host.ErrShuttingDown.Error()) {
		t.Fatalf("after Shutdown: %d %s", rec.Code, rec.Body)
	}
	if err := s.Start(); !errors.Is(err, host.ErrShuttingDown) {
		t.Fatalf("Start after Shutdown: %v", err)
	}
	if err := s.Shutdown(sctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// TestShutdownNeverStarted: a Server that was built and never started
// releases its database on Shutdown, so the data directory can be opened
// again at once.
func TestShutdownNeverStarted(t *testing.T) {
	dir := t.TempDir()
	opts := []host.Option{host.WithDir(dir), host.WithCoDir(dir + "/.co"), host.WithLogger(quietLogger())}
	for range 2 {
		s, err := host.New(t.Context(), factory("offline/demo"), opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServeStartsAndStops: Server.Serve starts a Server built with New and,
// when ctx ends, shuts it down and returns.
func TestServeStartsAndStops(t *testing.T) {
	dir := t.TempDir()
	s, err := host.New(t.Context(), factory("offline/demo"), host.WithDir(dir), host.WithCoDir(dir+"/.co"), host.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	code, m, _ := do(t, "GET", "http://"+ln.Addr().String()+"/health", nil)
	wantStatus(t, code, 200, m)
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); !errors.Is(err, host.ErrShuttingDown) {
		t.Fatalf("Start after Serve returned: %v", err)
	}
}

func containsJSONError(body, msg string) bool {
	return body == `{"error":"`+msg+`"}`+"\n" || body == `{"error":"`+msg+`"}`
}

// TestNotRunningAnswersCarryRequestID: the 503s before Start and after
// Shutdown carry the caller's X-Request-Id (or a fresh one) and an access
// log line with it, like every other answer. Before, they had neither.
func TestNotRunningAnswersCarryRequestID(t *testing.T) {
	dir := t.TempDir()
	logs := &testutil.Buffer{}
	s, err := host.New(context.Background(), factory("offline/demo"), host.WithDir(dir), host.WithCoDir(dir+"/.co"),
		host.WithLogger(slog.New(slog.NewTextHandler(logs, nil))), host.WithSweepInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	check := func(when, want string) {
		t.Helper()
		for _, id := range []string{"caller-" + when, ""} {
			r := mustRequest("GET", "/info")
			if id != "" {
				r.Header.Set("X-Request-Id", id)
			}
			rec := newRecorder()
			s.ServeHTTP(rec, r)
			got := rec.Header().Get("X-Request-Id")
			if rec.Code != 503 || !containsJSONError(rec.Body.String(), want) {
				t.Fatalf("%s: %d %s", when, rec.Code, rec.Body)
			}
			if (id != "" && got != id) || (id == "" && !strings.HasPrefix(got, "req_")) {
				t.Errorf("%s: X-Request-Id %q, sent %q", when, got, id)
			}
			if !strings.Contains(logs.String(), "request_id="+got) {
				t.Errorf("%s: no log line with request_id=%s:\n%s", when, got, logs.String())
			}
		}
	}
	check("before-start", host.ErrNotStarted.Error())
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	check("after-shutdown", host.ErrShuttingDown.Error())
}
