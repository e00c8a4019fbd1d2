package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/coderuntime"
	"github.com/agenthost/agenthost/internal/coding"
	"go.uber.org/goleak"
)

// argv starts a coding runtime: the agenthost binary with serve --role
// coding, or the stand-in of testdata/runtime when agenthost does not
// build.
var argv []string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coderuntime-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin := filepath.Join(dir, "agenthost")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/agenthost/agenthost/cmd/agenthost").CombinedOutput()
	argv = []string{bin, "serve", "--role", "coding"}
	if err != nil {
		fmt.Fprintf(os.Stderr, "crashtest: agenthost does not build; testing testdata/runtime instead:\n%s\n", out)
		bin = filepath.Join(dir, "runtime")
		if out, err := exec.Command("go", "build", "-o", bin, "./testdata/runtime").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building testdata/runtime: %v\n%s\n", err, out)
			os.Exit(1)
		}
		argv = []string{bin}
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left after the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const token = "crash-test-token"

// syncBuf is a goroutine-safe buffer for a process's output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	cmd  *exec.Cmd
	c    *coderuntime.Client
	logs *syncBuf
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs a runtime on port with its workspace ws and waits for
// /health.
func start(t testing.TB, ws string, port int, model string) *proc {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = ws
	cmd.Env = append(os.Environ(), "AGENTHOST_PORT="+strconv.Itoa(port), "AGENTHOST_WORKSPACE="+ws,
		"AGENTHOST_CONTROL_TOKEN="+token, "AGENTHOST_MODEL="+model, "AGENTHOST_OFFLINE_DELAY=40ms", "AGENTHOST_AGENT_ID=crash")
	logs := &syncBuf{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, c: coderuntime.NewClient(fmt.Sprintf("http://127.0.0.1:%d", port), token), logs: logs}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for p.c.Health(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the runtime did not start:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "listening on http://127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("no listening line:\n%s", logs)
	}
	return p
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	p.cmd.Wait()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKillMidTurn kills the runtime with SIGKILL while one session waits
// for a permission (with a message queued behind it) and another streams
// text, then starts it again on the same workspace.
func TestKillMidTurn(t *testing.T) {
	ws, port := t.TempDir(), freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := start(t, ws, port, "offline/slow")

	a, err := p.c.Send(ctx, "", `run bash "echo hi"`)
	if err != nil {
		t.Fatal(err)
	}
	var perm coding.Permission
	eventually(t, "the permission request", func() bool {
		ps, err := p.c.Permissions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 1 {
			perm = ps[0]
		}
		return len(ps) == 1
	})
	queued, err := p.c.Send(ctx, a.SessionID, "after the crash")
	if err != nil || !queued.Queued {
		t.Fatalf("queued send: %+v %v", queued, err)
	}
	b, err := p.c.Send(ctx, "", "tell me a long story please")
	if err != nil {
		t.Fatal(err)
	}
	sawDelta := false
	for ev, err := range p.c.Events(ctx, 0, b.SessionID) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == "message.delta" {
			sawDelta = true
			break
		}
	}
	if !sawDelta {
		t.Fatal("no text streamed")
	}
	p.kill(t)

	p2 := start(t, ws, port, "offline/slow")
	if ps, err := p2.c.Permissions(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("permissions after restart: %+v %v", ps, err)
	}
	if err := p2.c.ReplyPermission(ctx, perm.ID, coding.Reply{Reply: "once"}); !isStatus(err, 409) {
		t.Fatalf("reply to the expired permission: %v", err)
	}
	eventually(t, "the queued message to run", func() bool {
		st, err := p2.c.RuntimeStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return !st.Busy
	})
	ha, err := p2.c.Messages(ctx, a.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range ha.Messages {
		for _, part := range m.Info.Parts {
			switch part.Type {
			case "text":
				texts = append(texts, m.Info.Role+":"+part.Text)
			case "tool":
				texts = append(texts, "tool:"+part.State.Status+":"+part.State.Error)
			}
		}
	}
	joined := strings.Join(texts, "\n")
	if len(ha.Messages) != 4 || !strings.HasPrefix(texts[0], `user:run bash "echo hi"`) ||
		!strings.Contains(texts[1], "tool:error:interrupted: the permission request "+perm.ID+" expired") ||
		texts[2] != "user:after the crash" || !strings.HasPrefix(texts[3], "assistant:") {
		t.Fatalf("session A after the crash:\n%s", joined)
	}
	hb, err := p2.c.Messages(ctx, b.SessionID)
	if err != nil || len(hb.Messages) < 1 || hb.Messages[0].Info.Parts[0].Text != "tell me a long story please" {
		t.Fatalf("session B after the crash: %+v %v", hb, err)
	}

	// The event log spans both runs: ids keep growing, the expiry and the
	// interrupted turn are in it.
	var last int64
	var expired, interrupted bool
	for ev, err := range p2.c.Events(ctx, 0, "") {
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID <= last {
			t.Fatalf("event id %d after %d", ev.ID, last)
		}
		last = ev.ID
		d := string(ev.Data)
		expired = expired || ev.Type == "permission" && strings.Contains(d, `"state":"expired"`)
		interrupted = interrupted || ev.Type == "status" && ev.SessionID == b.SessionID && strings.Contains(d, `"result":"interrupted"`)
		if expired && interrupted {
			break
		}
	}
}

func isStatus(err error, status int) bool {
	ae, ok := err.(*coderuntime.APIError)
	return ok && ae.Status == status
}

// BenchmarkIdleRSS reports the resident memory of one idle runtime.
func BenchmarkIdleRSS(b *testing.B) {
	ws := b.TempDir()
	p := start(b, ws, freePort(b), "offline/demo")
	ctx := context.Background()
	res, err := p.c.Send(ctx, "", "hello")
	if err != nil {
		b.Fatal(err)
	}
	for {
		st, err := p.c.RuntimeStatus(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if !st.Busy {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = res
	time.Sleep(300 * time.Millisecond)
	var kb float64
	for i := 0; i < b.N; i++ {
		kb = rssKiB(b, p.cmd.Process.Pid)
	}
	b.ReportMetric(kb/1024, "RSS-MiB")
}

func rssKiB(b *testing.B, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Skip("no /proc:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
