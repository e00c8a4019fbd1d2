package host_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent/mcptools"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/mcptest"
	"github.com/agenthost/agenthost/internal/testutil"
)

// writeYAML writes host.yaml into a fresh directory and returns its path.
func writeYAML(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "host.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// toolResults returns the tool_result chat items of an /input answer.
func toolResults(m map[string]any) []map[string]any {
	var out []map[string]any
	items, _ := m["chat_items"].([]any)
	for _, it := range items {
		if it, ok := it.(map[string]any); ok && it["type"] == "tool_result" {
			out = append(out, it)
		}
	}
	return out
}

// TestHostMCPServers: host.yaml's mcp_servers, in OpenCode's shape, give
// the hosted agent the tools of a local (stdio) and a remote (Streamable
// HTTP, with a header from the environment) MCP server, both real servers
// built with the Go SDK; /info lists them; the host's approval rules apply
// to them by name; a disabled server is left out; Shutdown stops the local
// server's process.
func TestHostMCPServers(t *testing.T) {
	url, calls := mcptest.NewHTTP(t, "Authorization: Bearer tok-123")
	t.Setenv("AGENTHOST_TEST_MCP_TOKEN", "tok-123")
	cmd, _ := mcptest.Command()
	cfg := writeYAML(t, fmt.Sprintf(`mcp_servers:
  web:
    type: remote
    url: %[2]q
    headers:
      Authorization: Bearer {env:AGENTHOST_TEST_MCP_TOKEN}
  local:
    type: local
    command: [%[1]q]
    environment:
      AGENTHOST_MCPTEST: stdio
      GORACE: atexit_sleep_ms=0
  off:
    type: local
    command: ["/nonexistent/server"]
    enabled: false
`, cmd[0], url))
	h := startHost(t, "offline/demo", host.WithConfigFile(cfg), host.WithApproval("web_echo"))

	code, info, _ := do(t, "GET", h.URL+"/info", nil)
	wantStatus(t, code, 200, info)
	var tools []string
	for _, v := range info["tools"].([]any) {
		tools = append(tools, v.(string))
	}
	for _, want := range []string{"local_echo", "local_pid", "web_echo", "web_add", "add"} {
		if !slices.Contains(tools, want) {
			t.Fatalf("/info tools %v lack %s", tools, want)
		}
	}
	for _, n := range tools {
		if strings.HasPrefix(n, "off_") {
			t.Fatalf("the disabled server's tool %s is listed", n)
		}
	}
	// Servers are added in name order, not the file's.
	if slices.Index(tools, "local_echo") > slices.Index(tools, "web_echo") {
		t.Fatalf("tools out of name order: %v", tools)
	}

	code, m := post(t, h, map[string]any{"prompt": `use local_echo {"text": "from the host"}`})
	wantStatus(t, code, 200, m)
	if !strings.Contains(m["result"].(string), "echo: from the host") {
		t.Fatalf("local tool: %v", m["result"])
	}
	code, m = post(t, h, map[string]any{"prompt": `use web_add {"a": 2, "b": 40}`})
	wantStatus(t, code, 200, m)
	if !strings.Contains(m["result"].(string), `{"sum":42}`) {
		t.Fatalf("remote tool: %v", m["result"])
	}
	// web_echo needs approval, which nobody can give over plain HTTP: the
	// call is refused before it reaches the server.
	code, m = post(t, h, map[string]any{"prompt": `use web_echo {"text": "x"}`})
	wantStatus(t, code, 200, m)
	res := toolResults(m)
	if len(res) != 1 || res[0]["status"] != "failed" || !strings.Contains(res[0]["content"].(string), "approval") || calls.Echo() != 0 {
		t.Fatalf("web_echo without approval: %v, server saw %d calls", res, calls.Echo())
	}

	code, m = post(t, h, map[string]any{"prompt": "use local_pid"})
	wantStatus(t, code, 200, m)
	res = toolResults(m)
	if len(res) != 1 {
		t.Fatalf("local_pid: %v", m)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(res[0]["content"].(string)))
	if err != nil {
		t.Fatalf("local_pid: %v", res[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Close reaped the server, so it is gone, not a zombie.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the local MCP server %d outlived Shutdown: %v", pid, err)
	}
}

// TestHostMCPConfigErrors: a wrong mcp_servers entry fails New with a
// message naming the key, the server and the line; a server that cannot
// start fails New with mcptools.ErrUnavailable.
func TestHostMCPConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       error
		says       []string
	}{
		{"command as a string", "mcp_servers:\n  fs:\n    type: local\n    command: npx -y server\n", host.ErrConfig,
			[]string{`mcp_servers`, `"fs"`, ":4:"}},
		{"claude's args", "mcp_servers:\n  fs:\n    type: local\n    command: [npx]\n    args: [-y]\n", host.ErrConfig,
			[]string{`unknown key "args"`, "command is one list", ":5:"}},
		{"no type", "port: 8000\nmcp_servers:\n  fs:\n    command: [npx]\n", host.ErrConfig,
			[]string{`"fs"`, "type is missing", "mcp_servers"}},
		{"not a mapping", "mcp_servers: [a, b]\n", host.ErrConfig, []string{"mcp_servers", "mapping"}},
		{"unset variable", "mcp_servers:\n  web:\n    type: remote\n    url: http://127.0.0.1:1/mcp\n    headers:\n      Authorization: \"Bearer {env:AGENTHOST_TEST_UNSET_VAR}\"\n",
			host.ErrConfig, []string{"AGENTHOST_TEST_UNSET_VAR is not set"}},
		{"cannot start", "mcp_servers:\n  gone:\n    type: local\n    command: [/nonexistent/mcp-server]\n", mcptools.ErrUnavailable,
			[]string{"gone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := host.New(context.Background(), factory("offline/demo"), host.WithDir(dir), host.WithCoDir(dir+"/.co"),
				host.WithLogger(quietLogger()), host.WithConfigFile(writeYAML(t, tc.yaml)))
			if err == nil {
				s.Shutdown(context.Background())
				t.Fatal("New accepted it")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, w := range tc.says {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("err %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestWithMCPServers: the Go option takes the same entries as host.yaml.
func TestWithMCPServers(t *testing.T) {
	url, _ := mcptest.NewHTTP(t, "")
	h := startHost(t, "offline/demo", host.WithMCPServers(map[string]mcptools.Config{"web": {Type: "remote", URL: url}}))
	code, m := post(t, h, map[string]any{"prompt": `use web_echo {"text": "go"}`})
	wantStatus(t, code, 200, m)
	if !strings.Contains(m["result"].(string), "echo: go") {
		t.Fatalf("answer: %v", m)
	}
	if got := h.Config().MCPServers["web"].URL; got != url {
		t.Fatalf("Config().MCPServers: %q", got)
	}
}

// TestReloadKeepsMCPServers: a reload applies the rest of host.yaml but
// keeps the running MCP servers, and says that mcp_servers takes a
// restart.
func TestReloadKeepsMCPServers(t *testing.T) {
	first, calls := mcptest.NewHTTP(t, "")
	second, _ := mcptest.NewHTTP(t, "")
	cfg := writeYAML(t, fmt.Sprintf("summary: one\nmcp_servers:\n  web: {type: remote, url: %q}\n", first))
	var logs testutil.Buffer
	h := startHost(t, "offline/demo", host.WithConfigFile(cfg), host.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("summary: two\nmcp_servers:\n  web: {type: remote, url: %q}\n", second)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if c := h.Config(); c.Summary != "two" || c.MCPServers["web"].URL != first {
		t.Fatalf("after reload: summary %q, web %q", c.Summary, c.MCPServers["web"].URL)
	}
	if !strings.Contains(logs.String(), "mcp_servers changes take effect after a restart") {
		t.Fatalf("log: %s", logs.String())
	}
	code, m := post(t, h, map[string]any{"prompt": `use web_echo {"text": "still the first"}`})
	wantStatus(t, code, 200, m)
	if calls.Echo() != 1 {
		t.Fatalf("the first server saw %d calls: %v", calls.Echo(), m["result"])
	}
}
