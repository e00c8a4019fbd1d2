package host_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/trust"
)

// trustHost is a host on a real loopback server whose data directory the
// test chooses, so it can be restarted on the same database.
type trustHost struct {
	*host.Server
	URL  string
	dir  string
	stop func()
}

// startTrustHost starts a host with its data in dir/.co.
func startTrustHost(t testing.TB, dir string, opts ...host.Option) *trustHost {
	t.Helper()
	base := []host.Option{host.WithDir(dir), host.WithCoDir(filepath.Join(dir, ".co")), host.WithLogger(quietLogger()),
		host.WithPingInterval(time.Hour)}
	s, err := host.New(context.Background(), factory("offline/demo"), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Shutdown(ctx)
			ts.Close()
		})
	}
	t.Cleanup(stop)
	return &trustHost{Server: s, URL: ts.URL, dir: dir, stop: stop}
}

func (h *trustHost) testHost() *testHost { return &testHost{Server: h.Server, URL: h.URL} }

func newIdentity(t testing.TB) *trust.Identity {
	t.Helper()
	id, err := trust.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// signedInput is a signed POST /input body: fields in the signed payload
// (with "to" and "timestamp"), outer beside it.
func signedInput(t testing.TB, id *trust.Identity, to string, at time.Time, fields, outer map[string]any) []byte {
	t.Helper()
	env, err := trust.Sign(id, trust.NewPayload(to, at, fields))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"payload": env.Payload, "from": env.From, "signature": env.Signature}
	for k, v := range outer {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postRaw posts body to /input and decodes the answer.
func postRaw(t testing.TB, url string, body []byte) (int, map[string]any) {
	t.Helper()
	code, m, _ := do(t, "POST", url+"/input", body)
	return code, m
}

// signedGet sends a GET signed with X-Co-* headers.
func signedGet(t testing.TB, id *trust.Identity, base, path string) (int, map[string]any) {
	t.Helper()
	h := trust.SignHeaders(id, "GET", path, hostAddress(t, base), time.Now())
	var kv []string
	for k := range h {
		kv = append(kv, k, h.Get(k))
	}
	code, m, _ := do(t, "GET", base+path, nil, kv...)
	return code, m
}

// signedFrame is a WebSocket frame of type typ whose envelope signs fields.
func signedFrame(t testing.TB, id *trust.Identity, to, typ string, fields, outer map[string]any) map[string]any {
	t.Helper()
	env, err := trust.Sign(id, trust.NewPayload(to, time.Now(), fields))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"type": typ, "payload": env.Payload, "from": env.From, "signature": env.Signature}
	for k, v := range outer {
		m[k] = v
	}
	return m
}

func dialTrustWS(t testing.TB, h *trustHost) *wsClient {
	t.Helper()
	return dialWS(t, h.testHost())
}

// logTo is a logger writing text lines to b, for assertions on the log.
func logTo(b *testutil.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// hostAddress asks the host at base for its address (GET /info).
func hostAddress(t testing.TB, base string) string {
	t.Helper()
	code, m, _ := do(t, "GET", base+"/info", nil)
	if code != 200 {
		t.Fatalf("GET /info: %d %v", code, m)
	}
	return m["address"].(string)
}
