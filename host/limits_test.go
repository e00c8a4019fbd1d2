package host_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/trust"

	"github.com/agenthost/agenthost/trust/policy"
)

// TestJudgeCallsBounded: the judge of a natural-language policy is asked
// at most a few times a minute per caller and overall, so a crowd of new
// identities cannot run up a paid model's bill. On the old code each of
// 80 fresh identities cost one judge call.
func TestJudgeCallsBounded(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	judge := policy.JudgeFunc(func(context.Context, policy.JudgeInput) (bool, string, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return true, "welcome", nil
	})
	clock := testutil.NewClock(time.Now())
	h := startTrustHost(t, t.TempDir(), host.WithTrust(prosePolicy), host.WithJudge(judge),
		host.WithJudgeCacheTTL(-1), host.WithClock(clock.Now))
	refused := 0
	for i := range 80 {
		code, _ := postRaw(t, h.URL, signedInput(t, newIdentity(t), h.Address(), clock.Now(), map[string]any{"prompt": "hi " + strconv.Itoa(i)}, nil))
		if code == 503 { // the judge is busy: the policy cannot be evaluated now
			refused++
		}
	}
	mu.Lock()
	n := calls
	mu.Unlock()
	if n > policy.DefaultJudgeOverallPerMinute || refused != 80-n {
		t.Fatalf("80 new identities: %d judge calls, %d refused", n, refused)
	}
	// One caller, no cache: per-caller bound.
	alice := newIdentity(t)
	clock.Advance(time.Hour)
	mu.Lock()
	calls = 0
	mu.Unlock()
	for i := range 20 {
		postRaw(t, h.URL, signedInput(t, alice, h.Address(), clock.Now(), map[string]any{"prompt": "again " + strconv.Itoa(i)}, nil))
	}
	mu.Lock()
	defer mu.Unlock()
	if calls > policy.DefaultJudgePerCallerPerMinute {
		t.Fatalf("one caller: %d judge calls in a minute", calls)
	}
}

// TestInviteCodeAttemptsLimited: guessing invite codes is rate limited per
// address and per IP. On the old code 50 wrong guesses were all answered
// "invalid invite code", and the right one after them was accepted.
func TestInviteCodeAttemptsLimited(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/.co/host.yaml", "trust:\n  onboard:\n    invite_code: [RIGHT-CODE]\n  default: deny\n")
	clock := testutil.NewClock(time.Now())
	h := startTrustHost(t, dir, host.WithClock(clock.Now))
	guess := func(id *trust.Identity, code string, i int) int {
		c, _ := postRaw(t, h.URL, signedInput(t, id, h.Address(), clock.Now(), map[string]any{"prompt": "hi " + strconv.Itoa(i), "invite_code": code}, nil))
		return c
	}
	mallory := newIdentity(t)
	limited := false
	for i := range 50 {
		if code := guess(mallory, "guess-"+strconv.Itoa(i), i); code == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("50 wrong invite codes from one address were all tried")
	}
	if code := guess(mallory, "RIGHT-CODE", 100); code != 429 {
		t.Fatalf("right code while limited: %d", code)
	}
	// New identities from the same IP are limited too.
	limited = false
	for i := range 50 {
		if code := guess(newIdentity(t), "guess", 200+i); code == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("50 identities from one IP guessed without limit")
	}
	// Later, the right code works.
	clock.Advance(time.Hour)
	if code := guess(mallory, "RIGHT-CODE", 300); code != 200 {
		t.Fatalf("right code after the limit: %d", code)
	}
}

// serveReal serves h on a real loopback listener with Serve (the code
// path with the server's timeouts and connection limits).
func serveReal(t *testing.T, opts ...host.Option) string {
	t.Helper()
	dir := t.TempDir()
	base := []host.Option{host.WithDir(dir), host.WithCoDir(dir + "/.co"), host.WithLogger(quietLogger()), host.WithPingInterval(time.Hour)}
	s, err := host.New(context.Background(), factory("offline/demo"), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// closedByServer reports whether the server closes c (EOF) before the
// deadline: a blocking read, no sleeping.
func closedByServer(c net.Conn, within time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !(errorsAs(err, &ne) && ne.Timeout())
		}
	}
}

// TestServerTimeouts: idle keep-alive connections, slow headers and slow
// bodies are closed by the host. On the old code an idle keep-alive
// connection stayed open (no IdleTimeout) and a stalled body held its
// connection forever (no read timeout).
func TestServerTimeouts(t *testing.T) {
	addr := serveReal(t, host.WithTimeouts(host.Timeouts{ReadHeader: 200 * time.Millisecond, Read: 300 * time.Millisecond, Idle: 200 * time.Millisecond}))
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	idle := dial()
	idle.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
	if !closedByServer(idle, 10*time.Second) {
		t.Error("idle keep-alive connection left open")
	}
	slowHeaders := dial()
	slowHeaders.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n"))
	if !closedByServer(slowHeaders, 10*time.Second) {
		t.Error("connection with unfinished headers left open")
	}
	slowBody := dial()
	slowBody.Write([]byte("POST /input HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"prompt\":"))
	if !closedByServer(slowBody, 10*time.Second) {
		t.Error("connection with a stalled body left open")
	}
}

// TestConnectionsPerIP: one address cannot hold more than the configured
// number of connections. On the old code there was no cap.
func TestConnectionsPerIP(t *testing.T) {
	addr := serveReal(t, host.WithMaxConnsPerIP(3))
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
		conns = append(conns, c)
	}
	for _, c := range conns {
		buf := make([]byte, 512)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, _ := c.Read(buf); !strings.Contains(string(buf[:n]), "200 OK") {
			t.Fatalf("connection under the cap: %q", buf[:n])
		}
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
	buf := make([]byte, 512)
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := extra.Read(buf)
	if !strings.Contains(string(buf[:n]), "503") {
		t.Fatalf("a 4th connection from one IP: %q", buf[:n])
	}
}

func errorsAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

// TestSmallLimitUntilAdmitted: before the gate admits a caller, the host
// reads at most a small body or frame; admitted callers get the upload
// limits. On the old code a strict host read a 2 MB unsigned body (and
// WebSocket frame) whole before refusing it with 401.
func TestSmallLimitUntilAdmitted(t *testing.T) {
	big := strings.Repeat("x", 2<<20)
	strict := startTrustHost(t, t.TempDir(), host.WithTrust("strict"))
	code, m := post(t, strict.testHost(), map[string]any{"prompt": big})
	wantError(t, code, 413, m, "admits")
	w := dialTrustWS(t, strict)
	// The host stops reading at the limit and closes (1009): the write may
	// already fail, else the read tells.
	if err := w.c.Write(w.ctx, websocket.MessageText, []byte(`{"type":"INPUT","prompt":"`+big+`"}`)); err == nil {
		if _, _, err := w.c.Read(w.ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Fatalf("a 2 MB frame before admission: %v", err)
		}
	}
	// Under careful anonymous callers are admitted: the upload limits apply.
	careful := startTrustHost(t, t.TempDir())
	code, m = post(t, careful.testHost(), map[string]any{"prompt": "hi", "images": []string{"data:image/png;base64," + strings.Repeat("A", 2<<20)}})
	wantStatus(t, code, 200, m)
	w = dialTrustWS(t, careful)
	w.send(map[string]any{"type": "INPUT", "prompt": "hi", "images": []string{"data:image/png;base64," + strings.Repeat("A", 2<<20)}})
	if m, _ := w.until("OUTPUT", "ERROR"); m["type"] != "OUTPUT" {
		t.Fatalf("a 2 MB image from an admitted caller: %v", m)
	}
}

// TestUploadsOnlyAfterAdmission: files of a frame the gate refuses are
// never written. On the old code an unsigned INPUT after a signed CONNECT
// under strict was not asked about and its files were saved.
func TestUploadsOnlyAfterAdmission(t *testing.T) {
	alice := newIdentity(t)
	h := startTrustHost(t, t.TempDir(), host.WithTrust("strict"), host.WithWhitelist(alice.Address()))
	w := dialTrustWS(t, h)
	w.send(signedFrame(t, alice, h.Address(), "CONNECT", nil, nil))
	w.read()
	w.send(map[string]any{"type": "INPUT", "prompt": "read it", "files": []map[string]any{{"name": "x.txt", "data": "data:text/plain;base64,aGVsbG8="}}})
	if m, _ := w.until("OUTPUT", "ERROR"); m["type"] != "ERROR" {
		t.Fatalf("refused frame ran: %v", m["type"])
	}
	code, m := post(t, h.testHost(), map[string]any{"prompt": "read it", "files": []map[string]any{{"name": "x.txt", "data": "data:text/plain;base64,aGVsbG8="}}})
	wantStatus(t, code, 401, m)
	if _, err := os.Stat(filepath.Join(h.dir, ".co", "uploads")); !os.IsNotExist(err) {
		t.Fatalf("uploads written for refused requests: %v", err)
	}
}

// TestSignedHeadersLiftThePreAdmitLimit: under strict, a caller that signs
// the request headers is admitted before its body is read, so its large
// signed body is read whole.
func TestSignedHeadersLiftThePreAdmitLimit(t *testing.T) {
	alice := newIdentity(t)
	h := startTrustHost(t, t.TempDir(), host.WithTrust("strict"), host.WithWhitelist(alice.Address()))
	body := signedInput(t, alice, h.Address(), time.Now(), map[string]any{"prompt": strings.Repeat("y", 2<<20)}, nil)
	code, m := postRaw(t, h.URL, body)
	wantError(t, code, 413, m, "admits")
	hd := trust.SignHeaders(alice, "POST", "/input", h.Address(), time.Now())
	var kv []string
	for k := range hd {
		kv = append(kv, k, hd.Get(k))
	}
	code, m, _ = do(t, "POST", h.URL+"/input", body, kv...)
	wantStatus(t, code, 200, m)
}
