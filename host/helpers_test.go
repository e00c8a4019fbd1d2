package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil/testagent"
	"github.com/agenthost/agenthost/llm"
)

func factory(model string) host.Factory {
	return func() (*agent.Agent, error) {
		return agent.New("translator", agent.WithModel(model), agent.WithTools(testagent.Tools()...))
	}
}

// testHost starts a host on an httptest server with its data in a temp
// directory and no config file unless opts give one.
type testHost struct {
	*host.Server
	URL string
	ts  *httptest.Server
	dir string
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startHost(t testing.TB, model string, opts ...host.Option) *testHost {
	t.Helper()
	return startHostWith(t, factory(model), opts...)
}

// startHostWith is startHost with an agent of its own.
func startHostWith(t testing.TB, f host.Factory, opts ...host.Option) *testHost {
	t.Helper()
	dir := t.TempDir()
	base := []host.Option{host.WithDir(dir), host.WithCoDir(dir + "/.co"), host.WithLogger(quietLogger()),
		host.WithPingInterval(time.Hour)}
	s, err := host.New(context.Background(), f, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		ts.Close()
	})
	return &testHost{Server: s, URL: ts.URL, ts: ts, dir: dir}
}

// do sends a request and decodes the JSON answer.
func do(t testing.TB, method, url string, body any, hdr ...string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &m) != nil {
		m = map[string]any{"_raw": string(raw)}
	}
	return resp.StatusCode, m, resp.Header
}

func post(t testing.TB, h *testHost, body any) (int, map[string]any) {
	t.Helper()
	code, m, _ := do(t, "POST", h.URL+"/input", body)
	return code, m
}

func wantStatus(t testing.TB, code, want int, m map[string]any) {
	t.Helper()
	if code != want {
		t.Fatalf("status %d, want %d: %v", code, want, m)
	}
}

func wantError(t testing.TB, code, want int, m map[string]any, contains ...string) {
	t.Helper()
	wantStatus(t, code, want, m)
	msg, ok := m["error"].(string)
	if !ok || len(m) != 1 {
		t.Fatalf("error body %v: want exactly {\"error\": \"...\"}", m)
	}
	for _, c := range contains {
		if !strings.Contains(msg, c) {
			t.Fatalf("error %q does not mention %q", msg, c)
		}
	}
}

var _ = llm.UserText

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func mustRequest(method, target string) *http.Request {
	return httptest.NewRequest(method, target, nil)
}
