// Package isolationtest is the adversarial conformance suite of the
// platform's isolation promise (docs/security.md): from inside one
// organisation's agent — a bash call approved once, as any prompt-injected
// agent or session-page user can obtain — it tries to reach the platform,
// another tenant and the host, and checks that every attempt fails while a
// control command still works.
//
// Run drives a real platform over its HTTP API with real runtimes; the
// process and Docker drivers each run it from their own tests.
package isolationtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Target is the platform under attack.
type Target struct {
	// URL is the platform's base URL.
	URL string
	// Token returns an API token of the organisation named org.
	Token func(t testing.TB, org string) string
	// DataDir is the platform's data directory on the host (master key,
	// database, runtimes' directories).
	DataDir string
	// PlatformPID is the platform process's pid on the host.
	PlatformPID int
	// DiskLimit is the workspace cap the platform gives runtimes, in
	// bytes; the disk attack writes past it.
	DiskLimit int64
	// WorkspaceDir returns the host path of an agent's workspace, and
	// DataDirOf that of its runtime's own data (its session database).
	// Defaults: the process driver's layout under DataDir/runtimes.
	WorkspaceDir, DataDirOf func(agentID string) string
	// Netns enables the attacks that need a network namespace made by the
	// test (root and iproute2): a private address that must be refused and
	// a documentation-range ("public") address that must be reachable.
	Netns bool
}

// Run runs every attack against tg.
func Run(t *testing.T, tg Target) {
	if tg.DiskLimit <= 0 {
		t.Fatal("isolationtest: Target.DiskLimit must be set")
	}
	if tg.WorkspaceDir == nil {
		tg.WorkspaceDir = func(id string) string { return filepath.Join(tg.DataDir, "runtimes", id, "workspace") }
	}
	if tg.DataDirOf == nil {
		tg.DataDirOf = func(id string) string { return filepath.Join(tg.DataDir, "runtimes", id, "data") }
	}
	canary := "canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	victim := newOrg(t, tg, "victim-"+canary)
	attacker := newOrg(t, tg, "attacker-"+canary)

	// The victim: a secret and a file in its workspace.
	victimSecret := canary + "-victim-secret"
	victim.do("PUT", "/api/v1/secrets", map[string]any{"key": "VICTIM_SECRET", "value": victimSecret}, 0)
	victimID := victim.create("victim")
	victim.upload(victimID, "canary.txt", canary+"-victim-file")
	victimWorkspace := tg.WorkspaceDir(victimID)

	// The attacker: a secret of its own, which its tools may see.
	ownSecret := canary + "-own-secret"
	attacker.do("PUT", "/api/v1/secrets", map[string]any{"key": "OWN_SECRET", "value": ownSecret}, 0)
	id := attacker.create("attacker")
	sh := attacker.shell(id)

	// Services the agent must not reach: a canary on every host address
	// (loopback included), and the platform's own API.
	hostCanary := serveCanary(t, "0.0.0.0:0", canary+"-host-service")
	platformPort := portOf(t, tg.URL)

	t.Run("control command works", func(t *testing.T) {
		out := sh.run(t, "echo control-$((6*7))")
		if !strings.Contains(out, "control-42") {
			t.Fatalf("echo did not run; isolation must not take the tools away:\n%s", out)
		}
	})
	t.Run("own secret reaches the tools", func(t *testing.T) {
		out := sh.run(t, "echo \"own=$OWN_SECRET\"")
		if !strings.Contains(out, "own="+ownSecret) {
			t.Fatalf("the organisation's own secret did not reach its agent's tools:\n%s", out)
		}
	})

	home, _ := os.UserHomeDir()
	homeCanary := filepath.Join(home, ".agenthost-isolation-"+canary)
	if err := os.WriteFile(homeCanary, []byte(canary+"-operator-home"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(homeCanary) })
	files := []struct{ name, path string }{
		{"master key", filepath.Join(tg.DataDir, "master.key")},
		{"platform database", filepath.Join(tg.DataDir, "platform.db")},
		{"other workspace", filepath.Join(victimWorkspace, "uploads", "canary.txt")},
		{"own runtime database", filepath.Join(tg.DataDirOf(id), "runtime.db")},
		{"operator home", homeCanary},
		{"host shadow", "/etc/shadow"},
	}
	for _, f := range files {
		t.Run("read "+f.name, func(t *testing.T) {
			want, err := head(f.path)
			if err != nil {
				t.Fatalf("the test cannot read %s itself: %v", f.path, err)
			}
			out := sh.run(t, fmt.Sprintf("head -c 48 %q | base64 -w0; echo; echo read-attempted", f.path))
			if !strings.Contains(out, "read-attempted") {
				t.Fatalf("the command did not run:\n%s", out)
			}
			if strings.Contains(out, want) {
				t.Fatalf("%s (%s) is readable from an agent's bash:\n%s", f.name, f.path, out)
			}
		})
	}

	t.Run("list the runtimes", func(t *testing.T) {
		out := sh.run(t, fmt.Sprintf("ls -a %q %q 2>&1; echo listed", filepath.Join(tg.DataDir, "runtimes"), tg.DataDir))
		if strings.Contains(out, victimID) || strings.Contains(out, "master.key") {
			t.Fatalf("the platform's directories are visible from an agent's bash:\n%s", out)
		}
	})
	t.Run("find other tenants' files anywhere", func(t *testing.T) {
		out := sh.run(t, "timeout 20 grep -rl --include='*.txt' "+canary+"-victim / 2>/dev/null | head -5; echo searched")
		if strings.Contains(out, "canary.txt") {
			t.Fatalf("another organisation's files are reachable:\n%s", out)
		}
	})
	t.Run("secrets of other runtimes and of the agent loop", func(t *testing.T) {
		out := sh.run(t, "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null; env; echo scanned")
		for _, bad := range []string{victimSecret, "AGENTHOST_CONTROL_TOKEN", "AGENTHOST_MASTER_KEY"} {
			if strings.Contains(out, bad) {
				t.Fatalf("%s is readable from an agent's bash:\n%s", bad, out)
			}
		}
	})
	t.Run("see the platform's processes", func(t *testing.T) {
		out := sh.run(t, fmt.Sprintf("test -e /proc/%d && echo platform-visible; ls /proc | grep -c '^[0-9]' ; echo counted", tg.PlatformPID))
		if strings.Contains(out, "platform-visible") {
			t.Fatalf("the platform's process is visible in /proc:\n%s", out)
		}
	})
	t.Run("signal the platform", func(t *testing.T) {
		out := sh.run(t, fmt.Sprintf("kill -0 %d 2>&1 && echo signal-delivered; echo tried", tg.PlatformPID))
		if strings.Contains(out, "signal-delivered") {
			t.Fatalf("an agent can signal the platform process:\n%s", out)
		}
	})
	t.Run("call the platform API", func(t *testing.T) {
		out := sh.run(t, fmt.Sprintf("curl -sS -m 5 http://127.0.0.1:%d/health 2>&1; curl -sS -m 5 --noproxy '*' http://127.0.0.1:%d/health 2>&1; echo tried", platformPort, platformPort))
		if strings.Contains(out, `"status"`) || strings.Contains(out, `"ok"`) {
			t.Fatalf("an agent reaches the platform's API:\n%s", out)
		}
	})
	t.Run("reach services on the host", func(t *testing.T) {
		var cmds []string
		for _, ip := range hostAddrs(t) {
			u := "http://" + net.JoinHostPort(ip, strconv.Itoa(hostCanary))
			cmds = append(cmds, fmt.Sprintf("curl -sS -m 3 %s 2>&1; curl -sS -m 3 --noproxy '*' %s 2>&1", u, u))
		}
		out := sh.run(t, strings.Join(cmds, "; ")+"; echo tried")
		if strings.Contains(out, canary+"-host-service") {
			t.Fatalf("an agent reaches a service on the host:\n%s", out)
		}
	})
	if tg.Netns {
		private, public := netnsCanaries(t, canary)
		t.Run("reach a private address", func(t *testing.T) {
			out := sh.run(t, fmt.Sprintf("curl -sS -m 5 %s 2>&1; curl -sS -m 5 --noproxy '*' %s 2>&1; echo tried", private, private))
			if strings.Contains(out, canary+"-private") {
				t.Fatalf("an agent reaches a private address:\n%s", out)
			}
		})
		t.Run("public egress works", func(t *testing.T) {
			out := sh.run(t, fmt.Sprintf("curl -sS -m 10 %s 2>&1; echo tried", public))
			if !strings.Contains(out, canary+"-public") {
				t.Fatalf("an agent cannot reach a public address (egress must work through the sandbox):\n%s", out)
			}
		})
	}
	t.Run("escape the sandbox", func(t *testing.T) {
		out := sh.run(t, "unshare -Ur true 2>&1 && echo unshared; mount -t tmpfs x /mnt 2>&1 && echo mounted; echo tried")
		if strings.Contains(out, "unshared") || strings.Contains(out, "mounted") {
			t.Fatalf("an agent can create namespaces or mount file systems:\n%s", out)
		}
	})
	t.Run("fork bomb is capped", func(t *testing.T) {
		out := sh.runTimeout(t, "for i in $(seq 3000); do sleep 120 & done 2>/dev/null; echo started=$(jobs -p | wc -l); kill $(jobs -p) 2>/dev/null; echo done", 60*time.Second)
		n := -1
		if i := strings.Index(out, "started="); i >= 0 {
			fmt.Sscanf(out[i+len("started="):], "%d", &n)
		}
		if n >= 3000 {
			t.Fatalf("an agent started %d processes: no process cap:\n%s", n, out)
		}
		sh.mustWork(t)
	})
	t.Run("memory is capped", func(t *testing.T) {
		out := sh.runTimeout(t, `perl -e '$x = "x" x (3 * 1024**3); print "allocated\n"' 2>&1; echo exit=$?`, 60*time.Second)
		if strings.Contains(out, "allocated") {
			t.Fatalf("an agent allocated 3 GiB: no memory cap:\n%s", out)
		}
		sh.mustWork(t)
	})
	t.Run("disk is capped", func(t *testing.T) {
		mb := tg.DiskLimit>>20 + 64
		out := sh.runTimeout(t, fmt.Sprintf("dd if=/dev/zero of=big.bin bs=1M count=%d 2>&1 | tail -1; echo size=$(stat -c %%s big.bin 2>/dev/null); rm -f big.bin", mb), 90*time.Second)
		var size int64 = -1
		if i := strings.Index(out, "size="); i >= 0 {
			fmt.Sscanf(out[i+len("size="):], "%d", &size)
		}
		if size > tg.DiskLimit {
			t.Fatalf("an agent wrote %d bytes past a disk limit of %d:\n%s", size, tg.DiskLimit, out)
		}
		sh.mustWork(t)
	})
	t.Run("reserved secret names", func(t *testing.T) {
		for _, key := range []string{"LD_PRELOAD", "PATH", "BASH_ENV", "ENV", "PYTHONSTARTUP", "NODE_OPTIONS", "AGENTHOST_CONTROL_TOKEN", "GIT_SSH_COMMAND"} {
			resp := attacker.do("PUT", "/api/v1/secrets", map[string]any{"key": key, "value": "x"}, -1)
			if resp.status != http.StatusBadRequest || !strings.Contains(string(resp.body), "error") {
				t.Errorf("PUT secret %s: %d %s, want 400 with an error", key, resp.status, resp.body)
			}
		}
	})
	t.Run("other tenant unaffected", func(t *testing.T) {
		victim.shell(victimID).mustWork(t)
	})
}

// head returns the base64 of the first 48 bytes of a host file, as the
// attack prints them.
func head(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", fmt.Errorf("%s is empty", path)
	}
	return base64.StdEncoding.EncodeToString(b[:min(len(b), 48)]), nil
}

func portOf(t *testing.T, base string) int {
	_, port, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return n
}

// hostAddrs are the host's IPv4 addresses, loopback included: a service
// bound to all interfaces answers on each, and containers reach the host
// through the bridge's.
func hostAddrs(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	return out
}

// serveCanary serves body on addr and returns its port.
func serveCanary(t *testing.T, addr, body string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// org is one organisation's API client.
type org struct {
	t     *testing.T
	base  string
	token string
}

func newOrg(t *testing.T, tg Target, name string) *org {
	return &org{t: t, base: tg.URL, token: tg.Token(t, name)}
}

type response struct {
	status int
	body   []byte
}

// do sends a JSON request; want is the expected status (0: any 2xx, -1:
// anything).
func (o *org) do(method, path string, body any, want int) response {
	o.t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case *bytes.Buffer:
		rd = b
	case multipartBody:
		rd, ct = b.buf, b.contentType
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, o.base+path, rd)
	if err != nil {
		o.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	c := &http.Client{Timeout: 3 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		o.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{resp.StatusCode, b}
	switch {
	case want == 0 && (r.status < 200 || r.status > 299), want > 0 && r.status != want:
		o.t.Fatalf("%s %s: %d %s", method, path, r.status, b)
	}
	return r
}

func (o *org) json(method, path string, body any) map[string]any {
	o.t.Helper()
	r := o.do(method, path, body, 0)
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		o.t.Fatalf("%s %s: %v: %s", method, path, err, r.body)
	}
	return m
}

// poll GETs path for a wait loop: a 502 or 503 (a runtime that does not
// answer for a moment, e.g. while the kernel reclaims memory in its
// cgroup or kills a tool at its limit) answers false, for the loop to ask
// again before its deadline; any other failure fails the test.
func (o *org) poll(path string) (map[string]any, bool) {
	o.t.Helper()
	r := o.do("GET", path, nil, -1)
	if r.status == http.StatusBadGateway || r.status == http.StatusServiceUnavailable {
		o.t.Logf("GET %s: %d %s; asking again", path, r.status, r.body)
		return nil, false
	}
	if r.status < 200 || r.status > 299 {
		o.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		o.t.Fatalf("GET %s: %v: %s", path, err, r.body)
	}
	return m, true
}

func (o *org) create(name string) string {
	o.t.Helper()
	got := o.json("POST", "/api/v1/agents", map[string]any{"name": name})
	id, _ := got["agentId"].(string)
	if id == "" {
		o.t.Fatalf("create: %v", got)
	}
	o.t.Cleanup(func() { o.do("DELETE", "/api/v1/agents/"+id, nil, -1) })
	return id
}

type multipartBody struct {
	buf         *bytes.Buffer
	contentType string
}

func (o *org) upload(id, name, content string) {
	o.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", name)
	io.WriteString(fw, content)
	mw.Close()
	o.do("POST", "/api/v1/agents/"+id+"/files", multipartBody{&buf, mw.FormDataContentType()}, 0)
}

// shell runs bash commands in one session of an agent, approving each
// call once, as a person at the session page would.
type shell struct {
	o       *org
	agentID string
	session string
}

func (o *org) shell(id string) *shell { return &shell{o: o, agentID: id} }

func (s *shell) run(t *testing.T, cmd string) string {
	return s.runTimeout(t, cmd, 30*time.Second)
}

// mustWork checks that the agent still runs commands.
func (s *shell) mustWork(t *testing.T) {
	t.Helper()
	if out := s.run(t, "echo still-$((40+2))"); !strings.Contains(out, "still-42") {
		t.Fatalf("the agent no longer runs commands:\n%s", out)
	}
}

// runTimeout sends `use bash {...}` to the offline model, approves the
// call, waits for the turn to end and returns the tool's output.
func (s *shell) runTimeout(t *testing.T, cmd string, timeout time.Duration) string {
	t.Helper()
	args, _ := json.Marshal(map[string]any{"command": cmd, "timeout": timeout.Milliseconds()})
	body := map[string]any{"message": "use bash " + string(args)}
	if s.session != "" {
		body["sessionId"] = s.session
	}
	sent := s.o.json("POST", "/api/v1/agents/"+s.agentID+"/messages", body)
	s.session, _ = sent["sessionId"].(string)
	deadline := time.Now().Add(timeout + 60*time.Second)
	approved := false
	for {
		if time.Now().After(deadline) {
			t.Fatalf("command %q did not finish", cmd)
		}
		if !approved {
			perms, ok := s.o.poll("/api/v1/agents/" + s.agentID + "/permissions")
			if !ok {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			list, _ := perms["permissions"].([]any)
			for _, p := range list {
				pm, _ := p.(map[string]any)
				if pm["sessionID"] == s.session {
					s.o.json("POST", "/api/v1/agents/"+s.agentID+"/permissions/"+pm["id"].(string)+"/reply", map[string]any{"reply": "once"})
					approved = true
				}
			}
		}
		st, ok := s.o.poll("/api/v1/agents/" + s.agentID)
		if ok && st["busy"] == false {
			if out, ok := s.lastTool(t); ok {
				return out
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastTool returns the output of the session's last finished tool call
// that belongs to the newest user message.
func (s *shell) lastTool(t *testing.T) (string, bool) {
	h, ok := s.o.poll("/api/v1/agents/" + s.agentID + "/messages?sessionId=" + s.session)
	if !ok {
		return "", false
	}
	msgs, _ := h["messages"].([]any)
	var out string
	found := false
	for _, m := range msgs {
		info, _ := m.(map[string]any)["info"].(map[string]any)
		if info["role"] == "user" {
			out, found = "", false
			continue
		}
		parts, _ := info["parts"].([]any)
		for _, p := range parts {
			pm, _ := p.(map[string]any)
			if pm["type"] != "tool" {
				continue
			}
			st, _ := pm["state"].(map[string]any)
			switch st["status"] {
			case "completed":
				out, found = fmt.Sprint(st["output"]), true
			case "error":
				out, found = "[tool error] "+fmt.Sprint(st["error"]), true
			}
		}
	}
	return out, found
}
