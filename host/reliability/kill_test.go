package reliability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agenthost/agenthost/internal/testutil"
)

var binary string

// TestMain builds agenthost once for every test here.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agenthost-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "agenthost")
	cmd := exec.Command("go", "build", "-o", binary, "github.com/agenthost/agenthost/cmd/agenthost")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building agenthost:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
}

// start runs `agenthost serve` on port with its data in dir and waits for
// /health.
func start(t *testing.T, dir string, port int, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--port", fmt.Sprint(port), "--co-dir", filepath.Join(dir, ".co"), "--trust", "open"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "AGENTHOST_OFFLINE_DELAY=40ms")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &logs}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("agenthost did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func postJSON(t *testing.T, url string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, raw)
	}
	return m
}

type frame = map[string]any

func dial(t *testing.T, ctx context.Context, p *proc) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(p.url, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 24)
	return c
}

func send(t *testing.T, ctx context.Context, c *websocket.Conn, v any) {
	b, _ := json.Marshal(v)
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, ctx context.Context, c *websocket.Conn) frame {
	t.Helper()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var f frame
	json.Unmarshal(b, &f)
	return f
}

// TestKillDuringRuns: kill -9 while runs stream, restart: finished sessions
// are intact, running ones are interrupted, and every event a client
// received is still in the session's log.
func TestKillDuringRuns(t *testing.T) {
	dir := t.TempDir()
	port := testutil.FreePort(t)
	p := start(t, dir, port, "--model", "offline/slow")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	finished := map[string]string{}
	for _, prompt := range []string{"My name is John", "hi", "use add on 2 and 3"} {
		m := postJSON(t, p.url+"/input", map[string]any{"prompt": prompt})
		finished[m["session_id"].(string)] = m["result"].(string)
	}

	type running struct {
		id     string
		chunks string
		events []string
	}
	var runs []*running
	for i := 0; i < 3; i++ {
		c := dial(t, ctx, p)
		send(t, ctx, c, frame{"type": "INPUT", "prompt": fmt.Sprintf("run %d: please tell me something long enough to stream in many chunks", i)})
		r := &running{}
		for len(r.events) < 6 {
			f := read(t, ctx, c)
			if id, ok := f["id"].(string); ok {
				r.id = f["session_id"].(string)
				r.events = append(r.events, id)
				if f["type"] == "STREAM" {
					r.chunks += f["chunk"].(string)
				}
			}
		}
		runs = append(runs, r)
		defer c.CloseNow()
	}

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()

	p2 := start(t, dir, port, "--model", "offline/slow")
	for id, result := range finished {
		code, m := getJSON(t, p2.url+"/sessions/"+id)
		if code != 200 || m["status"] != "done" || m["result"] != result {
			t.Fatalf("finished session %s after restart: %d %v", id, code, m)
		}
		if msgs := m["session"].(map[string]any)["messages"].([]any); len(msgs) < 2 {
			t.Fatalf("finished session %s lost messages: %v", id, msgs)
		}
	}
	for _, r := range runs {
		code, m := getJSON(t, p2.url+"/sessions/"+r.id)
		if code != 200 || m["status"] != "interrupted" {
			t.Fatalf("running session %s after restart: %d %v", r.id, code, m)
		}
		if m["expires"] == nil {
			t.Fatalf("interrupted session never expires: %v", m)
		}
		// Replay the whole log: every event the client saw is there.
		c := dial(t, ctx, p2)
		send(t, ctx, c, frame{"type": "CONNECT", "session_id": r.id, "last_msg_id": "0"})
		if f := read(t, ctx, c); f["type"] != "CONNECTED" || f["status"] != "connected" {
			t.Fatalf("CONNECT after restart: %v", f)
		}
		var ids []string
		var chunks string
		for len(ids) < len(r.events) {
			f := read(t, ctx, c)
			if id, ok := f["id"].(string); ok {
				ids = append(ids, id)
				if f["type"] == "STREAM" {
					chunks += f["chunk"].(string)
				}
			}
		}
		c.CloseNow()
		if strings.Join(ids, ",") != strings.Join(r.events, ",") || chunks != r.chunks {
			t.Fatalf("acknowledged events lost:\nsaw    %v %q\nstored %v %q", r.events, r.chunks, ids, chunks)
		}
		// The interrupted conversation can go on.
		m2 := postJSON(t, p2.url+"/input", map[string]any{"prompt": "hi again", "session_id": r.id})
		if m2["session_id"] != r.id || m2["status"] != "done" {
			t.Fatalf("continuing an interrupted session: %v", m2)
		}
	}
}

// TestGracefulStop: SIGTERM lets a short run finish, then the process
// exits cleanly.
func TestGracefulStop(t *testing.T) {
	dir := t.TempDir()
	port := testutil.FreePort(t)
	p := start(t, dir, port, "--model", "offline/slow")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, p)
	defer c.CloseNow()
	send(t, ctx, c, frame{"type": "INPUT", "prompt": "hi"})
	first := read(t, ctx, c)
	id := first["session_id"].(string)
	p.cmd.Process.Signal(syscall.SIGTERM)
	var out frame
	for out == nil {
		f := read(t, ctx, c)
		if f["type"] == "OUTPUT" {
			out = f
		}
	}
	if out["status"] != "done" {
		t.Fatalf("run during graceful stop: %v", out)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs)
	}
	p2 := start(t, dir, port)
	if _, m := getJSON(t, p2.url+"/sessions/"+id); m["status"] != "done" {
		t.Fatalf("after graceful stop: %v", m)
	}
}
