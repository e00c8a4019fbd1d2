package coderuntime

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/coding"
)

const testToken = "test-control-token"

// rig is a runtime served on a real loopback port.
type rig struct {
	rt  *Runtime
	srv *httptest.Server
	c   *Client
	cfg Config
}

// newRig starts a runtime in a temporary workspace; tweak adjusts its
// configuration.
func newRig(t testing.TB, tweak func(*Config)) *rig {
	t.Helper()
	cfg := Config{Workspace: t.TempDir(), Token: testToken, Model: "offline/demo", Sandbox: testSandbox,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Heartbeat: 200 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	return startRig(t, cfg)
}

func startRig(t testing.TB, cfg Config) *rig {
	t.Helper()
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt.Handler())
	rg := &rig{rt: rt, srv: srv, c: NewClient(srv.URL, cfg.Token), cfg: cfg}
	t.Cleanup(rg.stop)
	return rg
}

// stop closes the runtime and its server; it may be called twice.
func (rg *rig) stop() {
	rg.rt.Close()
	rg.srv.CloseClientConnections()
	rg.srv.Close()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// await checks cond each time the runtime's engine changes (a commit, a
// session going idle or leaving memory) until it holds, for up to 20 s:
// no polling, no sleeps.
func (rg *rig) await(t testing.TB, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		changed := rg.rt.eng.Changed()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (rg *rig) waitIdle(t testing.TB) {
	t.Helper()
	rg.await(t, "the runtime to be idle", func() bool {
		st, err := rg.c.RuntimeStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return !st.Busy
	})
}

func (rg *rig) send(t testing.TB, sessionID, text string) SendResult {
	t.Helper()
	res, err := rg.c.Send(ctxT(t), sessionID, text)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Sent || res.SessionID == "" || !strings.HasPrefix(res.MessageID, "msg_") {
		t.Fatalf("send: %+v", res)
	}
	return res
}

func (rg *rig) history(t testing.TB, sessionID string) SessionHistory {
	t.Helper()
	h, err := rg.c.Messages(ctxT(t), sessionID)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// raw sends a request with the control token and returns status and body.
func (rg *rig) raw(t testing.TB, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, rg.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: %d, not a JSON object: %q", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// apiStatus returns the status of an *APIError, or 0.
func apiStatus(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// pendingPermission waits for exactly one pending permission.
func (rg *rig) pendingPermission(t testing.TB) (p coding.Permission) {
	t.Helper()
	rg.await(t, "a pending permission", func() bool {
		ps, err := rg.c.Permissions(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 1 {
			p = ps[0]
		}
		return len(ps) == 1
	})
	return p
}

// toolParts returns the tool parts of a history, in order.
func toolParts(h SessionHistory) []Part {
	var out []Part
	for _, m := range h.Messages {
		for _, p := range m.Info.Parts {
			if p.Type == "tool" {
				out = append(out, p)
			}
		}
	}
	return out
}
