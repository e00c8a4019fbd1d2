package obs

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func env(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

// TestTracingEnabled: traces are exported only when the standard
// variables ask for them, and never when the SDK is disabled.
func TestTracingEnabled(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  func(string) string
		want bool
	}{
		{"unset", env(), false},
		{"endpoint", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), true},
		{"traces endpoint", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces"), true},
		{"exporter otlp", env("OTEL_TRACES_EXPORTER", "otlp"), true},
		{"exporter none", env("OTEL_TRACES_EXPORTER", "none", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), false},
		{"sdk disabled", env("OTEL_SDK_DISABLED", "true", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), false},
	} {
		if got := TracingEnabled(tc.env); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSetupTracingRefusesGRPC: a protocol this build does not speak fails
// with a message naming the fix, instead of exporting nowhere.
func TestSetupTracingRefusesGRPC(t *testing.T) {
	_, err := SetupTracing(context.Background(), env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), "t")
	if !errors.Is(err, ErrTracingConfig) || !strings.Contains(err.Error(), "http/protobuf") {
		t.Fatalf("err = %v", err)
	}
	stop, err := SetupTracing(context.Background(), env(), "t")
	if err != nil {
		t.Fatal(err)
	}
	stop(context.Background())
}

// TestTransportPropagates: a request made with a traced context and a
// request id carries both to the next server.
func TestTransportPropagates(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer srv.Close()
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("t").Start(WithRequestID(context.Background(), "req-42"), "op")
	defer span.End()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := (&http.Client{Transport: Transport(nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if tp := got.Get("Traceparent"); !strings.Contains(tp, span.SpanContext().TraceID().String()) {
		t.Errorf("traceparent %q, want trace %s", tp, span.SpanContext().TraceID())
	}
	if got.Get(RequestIDHeader) != "req-42" {
		t.Errorf("X-Request-Id %q", got.Get(RequestIDHeader))
	}
}

// FuzzValidRequestID: an accepted id is short and made of safe characters
// only, so it cannot break a log line or a header.
func FuzzValidRequestID(f *testing.F) {
	for _, s := range []string{"abc", "a\nb", "req_0123", strings.Repeat("x", 200), "a=b/c+d@e:f", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidRequestID(s) {
			return
		}
		if len(s) == 0 || len(s) > MaxRequestIDLen {
			t.Fatalf("accepted length %d", len(s))
		}
		for _, c := range s {
			if c <= ' ' || c > '~' || strings.ContainsRune(`"\<>;,`, c) {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}
