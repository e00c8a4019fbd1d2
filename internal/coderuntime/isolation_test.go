package coderuntime

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/coding"
	"github.com/agenthost/agenthost/internal/sandbox"
)

// toolOutput runs one approved tool call (the offline model's syntax, e.g.
// `call bash {"command":"ls"}`; it calls every tool whose name the prompt
// holds, so commands avoid the words grep, read, list...) in a new session
// and returns what the tool reported.
func (rg *rig) toolOutput(t *testing.T, prompt string) string {
	t.Helper()
	res := rg.send(t, "", prompt)
	rg.waitIdle(t)
	tp := toolParts(rg.history(t, res.SessionID))
	if len(tp) != 1 {
		t.Fatalf("tool parts: %+v", tp)
	}
	return tp[0].State.Output + tp[0].State.Error
}

func (rg *rig) bashOutput(t *testing.T, command string) string {
	t.Helper()
	return rg.toolOutput(t, bashPrompt(command))
}

// bashPrompt makes the offline model call bash with exactly command.
func bashPrompt(command string) string {
	b, _ := json.Marshal(map[string]string{"command": command})
	return "call bash " + string(b)
}

func allowTools(c *Config) {
	c.Rules = []coding.Rule{{Permission: "bash", Pattern: "*", Action: coding.Allow}, {Permission: "webfetch", Pattern: "*", Action: coding.Allow}}
}

func needSandbox(t *testing.T) {
	if testSandbox != SandboxBwrap {
		t.Skip("no tool sandbox on this machine")
	}
}

// TestToolEnvironment: tools get an environment built from nothing plus
// the variables AGENTHOST_TOOL_ENV names; the runtime's own (control
// token, model keys) stay out.
func TestToolEnvironment(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "model-key-canary")
	t.Setenv("AGENTHOST_CONTROL_TOKEN", testToken)
	t.Setenv("AGENTHOST_SOMETHING", "runtime-canary")
	t.Setenv("ORG_SECRET", "org-secret-value")
	t.Setenv("UNNAMED_SECRET", "unnamed-canary")
	t.Setenv("AGENTHOST_TOOL_ENV", "ORG_SECRET")
	for _, mode := range []string{SandboxNone, testSandbox} {
		t.Run(mode, func(t *testing.T) {
			s, err := FromEnv(os.Getenv, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			rg := newRig(t, func(c *Config) {
				allowTools(c)
				c.ToolEnv = s.ToolEnv
				c.Sandbox = mode
			})
			out := rg.bashOutput(t, "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
			for _, leaked := range []string{"model-key-canary", testToken, "runtime-canary", "unnamed-canary"} {
				if strings.Contains(out, leaked) {
					t.Errorf("the tools see %q:\n%s", leaked, out)
				}
			}
			if !strings.Contains(out, "ORG_SECRET=org-secret-value") {
				t.Errorf("the named variable is missing:\n%s", out)
			}
		})
	}
}

// TestToolIsolation: from an approved bash call, the runtime's database,
// its control API on the host's loopback and its process are out of
// reach, while echo works.
func TestToolIsolation(t *testing.T) {
	needSandbox(t)
	outside := t.TempDir()
	rg := newRig(t, allowTools)                                              // data directory inside the workspace
	rg2 := newRig(t, func(c *Config) { allowTools(c); c.DataDir = outside }) // and outside
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(rg.srv.URL, "http://"))
	pid := strconv.Itoa(os.Getpid())
	if out := rg.bashOutput(t, "echo ok"); !strings.HasPrefix(out, "ok\n[exit code 0]") {
		t.Fatalf("control command: %q", out)
	}
	attempts := []struct {
		rg      *rig
		command string
	}{
		{rg, "cat /workspace/.agenthost/runtime.db"},
		{rg, `test -n "$(ls -A /workspace/.agenthost)"`},
		{rg, "touch /workspace/.agenthost/x"},
		{rg2, "cat " + filepath.Join(outside, "runtime.db")},
		{rg, "curl -sSf --max-time 5 --noproxy '*' " + rg.srv.URL + "/control/status"},
		{rg, "curl -sSf --max-time 5 --noproxy '' " + rg.srv.URL + "/control/status"},
		{rg, "exec 3<>/dev/tcp/127.0.0.1/" + port},
		{rg, "kill -0 " + pid},
		{rg, "ls /proc/" + pid + "/environ"},
		// The token is assembled in awk, so no command line holds it.
		{rg, `cat /proc/*/environ /proc/*/cmdline 2>/dev/null | tr '\0' '\n' | T1=` + testToken[:5] + ` T2=` + testToken[5:] +
			` awk 'index($0, ENVIRON["T1"] ENVIRON["T2"]){f=1} END{exit !f}'`},
	}
	for _, a := range attempts {
		out := a.rg.bashOutput(t, a.command)
		if strings.Contains(out, "[exit code 0]") || strings.Contains(out, testToken) || strings.Contains(out, "SQLite") {
			t.Errorf("%s succeeded:\n%s", a.command, out)
		}
	}
	if _, err := os.Stat(filepath.Join(rg.rt.Workspace(), ".agenthost", "runtime.db")); err != nil {
		t.Fatalf("the database is not where the attempts looked: %v", err)
	}
}

// TestEgress: webfetch and bash's proxy refuse the host's loopback unless
// AGENTHOST_EGRESS_ALLOW allows it.
func TestEgress(t *testing.T) {
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "canary-reached") }))
	defer canary.Close()
	rg := newRig(t, allowTools)
	if out := rg.toolOutput(t, `call webfetch {"url":"`+canary.URL+`"}`); strings.Contains(out, "canary-reached") || !strings.Contains(out, "egress refused") {
		t.Errorf("webfetch by default: %q", out)
	}
	rg2 := newRig(t, func(c *Config) { allowTools(c); c.EgressAllow = "127.0.0.1" })
	if out := rg2.toolOutput(t, `call webfetch {"url":"`+canary.URL+`"}`); !strings.Contains(out, "canary-reached") {
		t.Errorf("webfetch allowed: %q", out)
	}
	if testSandbox == SandboxBwrap {
		if out := rg.bashOutput(t, "curl -sS --max-time 5 --noproxy '' "+canary.URL); strings.Contains(out, "canary-reached") {
			t.Errorf("curl by default: %q", out)
		}
		if out := rg2.bashOutput(t, "curl -sS --max-time 5 --noproxy '' "+canary.URL); !strings.Contains(out, "canary-reached") {
			t.Errorf("curl allowed: %q", out)
		}
	}
}

// TestAbortAllEndsSandboxes: aborting every session ends their sandboxes
// with what runs in the background.
func TestAbortAllEndsSandboxes(t *testing.T) {
	needSandbox(t)
	rg := newRig(t, allowTools)
	res := rg.send(t, "", bashPrompt("sleep 300 >/dev/null 2>&1 & echo started > /tmp/marker"))
	rg.waitIdle(t)
	if _, err := rg.rt.AbortAll(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rg.send(t, res.SessionID, bashPrompt("cat /tmp/marker; pgrep -c sleep"))
	rg.waitIdle(t)
	tp := toolParts(rg.history(t, res.SessionID))
	if out := tp[len(tp)-1].State.Output; strings.Contains(out, "started") || !strings.Contains(out, "\n0\n") {
		t.Errorf("the sandbox survived: %q", out)
	}
}

// TestSandboxRequired: with the sandbox wanted and bubblewrap missing, the
// runtime refuses to start and says how to get it.
func TestSandboxRequired(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := New(Config{Workspace: t.TempDir(), Token: testToken, Sandbox: SandboxBwrap})
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "apt-get install bubblewrap") {
		t.Fatalf("err = %v", err)
	}
	rt, err := New(Config{Workspace: t.TempDir(), Token: testToken, Sandbox: SandboxNone})
	if err != nil {
		t.Fatal(err)
	}
	rt.Close()
}

func TestIsolationFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	s, err := FromEnv(env("AGENTHOST_SANDBOX", "none", "AGENTHOST_TOOL_ENV", "A, B", "A", "1", "AGENTHOST_EGRESS_ALLOW", "10.0.0.0/8,git.corp",
		"AGENTHOST_DISK_LIMIT", "1048576", "AGENTHOST_NOFILE_LIMIT", "256", "AGENTHOST_SANDBOX_CHECKED", "1"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !s.SandboxChecked {
		t.Error("AGENTHOST_SANDBOX_CHECKED=1 not read")
	}
	if s.Sandbox != "none" || strings.Join(s.ToolEnv, " ") != "A=1" || s.EgressAllow != "10.0.0.0/8,git.corp" || s.DiskLimit != 1<<20 || s.NoFile != 256 {
		t.Errorf("%+v", s.Config)
	}
	for _, bad := range [][]string{
		{"AGENTHOST_SANDBOX", "docker"},
		{"AGENTHOST_TOOL_ENV", "AGENTHOST_CONTROL_TOKEN"},
		{"AGENTHOST_EGRESS_ALLOW", "10.0.0.0/99"},
		{"AGENTHOST_DISK_LIMIT", "10G"},
		{"AGENTHOST_NOFILE_LIMIT", "-1"},
	} {
		if _, err := FromEnv(env(bad...), t.TempDir()); err == nil {
			t.Errorf("%s=%s accepted", bad[0], bad[1])
		}
	}
}
