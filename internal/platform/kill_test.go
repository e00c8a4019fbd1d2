package platform_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/auth"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/platform/store/postgres/pgtest"
	"github.com/agenthost/agenthost/internal/runtime/process"
)

// platformProc is `agenthost platform` running as its own process, so a
// test can kill -9 it.
type platformProc struct {
	t       *testing.T
	args    []string
	port    int
	url     string
	cmd     *exec.Cmd
	logs    *platformtest.Buffer
	dataDir string
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newPlatformProc prepares a platform process on its own data directory
// (and PostgreSQL schema with pg) whose runtimes run runtimeCommand, and
// issues a token for org "acme".
func newPlatformProc(t *testing.T, pg bool, runtimeCommand string) (*platformProc, string) {
	t.Helper()
	dir := dataDir(t)
	p := &platformProc{t: t, port: freePort(t), dataDir: dir, logs: &platformtest.Buffer{}}
	p.url = fmt.Sprintf("http://127.0.0.1:%d", p.port)
	rp := ports()
	p.args = []string{"platform", "--host", "127.0.0.1", "--port", fmt.Sprint(p.port), "--data", dir,
		"--ports", fmt.Sprintf("%d-%d", rp.Min, rp.Max), "--runtime-command", runtimeCommand}
	dsn := ""
	if pg {
		dsn = pgtest.DSN(t)
		p.args = append(p.args, "--database", dsn, "--node", "kill-test")
	}
	st, err := platform.OpenStore(context.Background(), dir, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _, err := auth.Issue(context.Background(), st, "acme", "test", time.Now(), ids.New)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Nothing outlives the test: destroy the runtimes the platforms left.
	t.Cleanup(func() {
		d, err := process.New(process.Options{Root: filepath.Join(dir, "runtimes")})
		if err != nil {
			return
		}
		defer d.Close()
		hs, _ := d.List(context.Background())
		for _, h := range hs {
			d.Destroy(context.Background(), h)
		}
	})
	return p, tok
}

// start starts the platform process and waits for /health.
func (p *platformProc) start() {
	p.t.Helper()
	p.cmd = exec.Command(platformtest.Agenthost(p.t), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.Env = append(os.Environ(), "AGENTHOST_OFFLINE_DELAY=30ms")
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	cmd := p.cmd
	p.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("platform did not start:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and reaps the process.
func (p *platformProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// TestKillPlatformMidProvisioning kills -9 the platform while a runtime
// is coming up: after a restart the agent is RUNNING (never stuck
// PROVISIONING), its initial prompt is delivered once, and it talks.
func TestKillPlatformMidProvisioning(t *testing.T) {
	if testing.Short() {
		t.Skip("runs platform processes")
	}
	backends(t, func(t *testing.T, pg bool) {
		script := filepath.Join(t.TempDir(), "slow-runtime.sh")
		os.WriteFile(script, []byte("#!/bin/sh\nsleep 1\nexec "+platformtest.Agenthost(t)+" serve --role coding\n"), 0o755)
		p, tok := newPlatformProc(t, pg, "/bin/sh "+script)
		p.start()
		c := &api{t: t, Client: &platformtest.Client{Base: p.url, Token: tok}}

		go func() { // never answered: the platform dies first
			req, _ := http.NewRequest("POST", p.url+"/api/v1/agents", strings.NewReader(`{"name": "doomed", "initialPrompt": "Hello after the crash"}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		var id string
		eventually(t, "the agent PROVISIONING", func() bool {
			l := maps(c.get("/api/v1/agents")["agents"])
			if len(l) == 1 && l[0]["status"] == "PROVISIONING" {
				id = l[0]["agentId"].(string)
				return true
			}
			return false
		})
		// The runtime process is up (it answers /health a second later).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.logs.WaitFor(ctx, "runtime started"); err != nil {
			t.Fatalf("%v\n%s", err, p.logs)
		}
		p.kill()

		p.start()
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("platform logs:\n%s", p.logs)
			}
		})
		var st map[string]any
		eventually(t, "the agent RUNNING after the restart", func() bool {
			st = c.get("/api/v1/agents/" + id)
			if st["status"] == "ERROR" {
				t.Fatalf("agent ERROR after the restart: %v\n%s", st, p.logs.String())
			}
			return st["status"] == "RUNNING" && len(maps(st["sessions"])) == 1
		})
		c.waitIdle(id)
		if n := runtimeProcesses(t, id); n != 1 {
			t.Fatalf("%d runtime processes for the agent after the restart, want 1", n)
		}
		sid := maps(st["sessions"])[0]["id"].(string)
		msgs := c.history(id, sid)
		if len(msgs) < 2 || text(msgs[0]) != "Hello after the crash" {
			t.Fatalf("history after the interrupted create = %v", msgs)
		}
		sent := c.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sid, "message": "still there?"})
		if sent["sent"] != true {
			t.Fatal(sent)
		}
		c.waitIdle(id)
		if n := len(c.history(id, sid)); n < 4 {
			t.Fatalf("%d messages after a follow-up", n)
		}
	})
}

// TestKillPlatformMidConversation kills -9 the platform right after it
// acknowledged messages (some still queued behind a running turn): after a
// restart the agent is RUNNING, re-attached, and every acknowledged
// message is in the history, answered.
func TestKillPlatformMidConversation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs platform processes")
	}
	backends(t, func(t *testing.T, pg bool) {
		p, tok := newPlatformProc(t, pg, platformtest.Agenthost(t)+" serve --role coding")
		p.start()
		c := &api{t: t, Client: &platformtest.Client{Base: p.url, Token: tok}}
		id, created := c.create(map[string]any{"name": "chatty", "initialPrompt": "first", "model": "offline/slow"})
		sid := maps(created["sessions"])[0]["id"].(string)
		var acked []string
		for i := range 3 {
			msg := fmt.Sprintf("acknowledged message %d", i)
			if got := c.post("/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sid, "message": msg}); got["sent"] == true {
				acked = append(acked, msg)
			}
		}
		p.kill() // mid-turn, with messages queued

		p.start()
		var st map[string]any
		eventually(t, "the agent RUNNING after the restart", func() bool {
			st = c.get("/api/v1/agents/" + id)
			return st["status"] == "RUNNING"
		})
		st = c.waitIdle(id)
		if len(maps(st["sessions"])) != 1 {
			t.Fatalf("sessions after the restart = %v", st["sessions"])
		}
		msgs := c.history(id, sid)
		var users []string
		for _, m := range msgs {
			if role(m) == "user" {
				users = append(users, text(m))
			}
		}
		want := append([]string{"first"}, acked...)
		if strings.Join(users, "|") != strings.Join(want, "|") {
			t.Fatalf("user messages after kill -9 = %q, want %q", users, want)
		}
		if role(msgs[len(msgs)-1]) != "assistant" {
			t.Fatalf("the last acknowledged message was not answered: %v", msgs[len(msgs)-1])
		}
		if n := runtimeProcesses(t, id); n != 1 {
			t.Fatalf("%d runtime processes for the agent after the restart, want 1", n)
		}
		if !strings.Contains(p.logs.String(), "re-attached runtime") {
			t.Fatalf("the runtime was not re-attached:\n%s", p.logs.String())
		}
	})
}

// runtimeProcesses counts the live processes whose environment names the
// agent: its runtime, and nothing else should have it.
func runtimeProcesses(t *testing.T, agentID string) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	n := 0
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err != nil {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue // a zombie is no runtime
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == "AGENTHOST_AGENT_ID="+agentID {
				n++
				break
			}
		}
	}
	return n
}
