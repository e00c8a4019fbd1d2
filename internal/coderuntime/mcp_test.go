package coderuntime

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/agent/mcptools"
	"github.com/agenthost/agenthost/internal/coding"
	"github.com/agenthost/agenthost/internal/mcptest"
)

// TestMCPServersInRuntime: a platform agent's stdio MCP server (a real one,
// built with the Go SDK) gives the coding agent its tools; a call goes
// through the coding permission rules like a built-in tool (asked, then
// allowed once); "{env:NAME}" reaches the server from the organisation's
// secrets (ToolEnv) and from nothing else of the runtime's environment; a
// server that cannot start is left out without keeping the agent from
// running.
func TestMCPServersInRuntime(t *testing.T) {
	t.Setenv("OPERATOR_ONLY", "operator-secret")
	rg := newRig(t, func(c *Config) {
		c.ToolEnv = []string{"ORG_TOKEN=org-secret-42"}
		c.MCPServers = map[string]mcptools.Config{
			"local": {Type: mcptools.TypeLocal, Command: []string{os.Args[0]},
				Environment: map[string]string{mcptest.EnvServe: "stdio", "GORACE": "atexit_sleep_ms=0", "TOKEN": "{env:ORG_TOKEN}"}},
			"broken": {Type: mcptools.TypeLocal, Command: []string{"/nonexistent/mcp-server"}},
		}
	})
	ctx := ctxT(t)
	res := rg.send(t, "", `use local_env {"name": "TOKEN"}`)
	p := rg.pendingPermission(t)
	if p.Permission != "local_env" {
		t.Fatalf("permission: %+v", p)
	}
	if err := rg.c.ReplyPermission(ctx, p.ID, coding.Reply{Reply: coding.ReplyOnce}); err != nil {
		t.Fatal(err)
	}
	rg.waitIdle(t)
	parts := toolParts(rg.history(t, res.SessionID))
	if len(parts) != 1 || parts[0].Tool != "local_env" || parts[0].State.Status != "completed" || !strings.Contains(parts[0].State.Output, "org-secret-42") {
		t.Fatalf("tool parts: %+v", parts)
	}

	// A configuration naming a variable that is not one of the
	// organisation's secrets is left out: the operator's variables are not
	// there to be named.
	rg2 := newRig(t, func(c *Config) {
		c.MCPServers = map[string]mcptools.Config{"sneaky": {Type: mcptools.TypeLocal, Command: []string{os.Args[0]},
			Environment: map[string]string{mcptest.EnvServe: "stdio", "X": "{env:OPERATOR_ONLY}"}}}
	})
	for _, tl := range rg2.rt.ag.Tools() {
		if strings.HasPrefix(tl.Spec().Name, "sneaky_") {
			t.Fatalf("a server resolving the operator's variable was started: %s", tl.Spec().Name)
		}
	}
}

// TestMCPServersNetwork: an agent's MCP servers get no more network than
// its tools. A remote server on the host's loopback is refused by the
// egress policy (left out) unless the operator allows that address; a
// local server in bubblewrap has no network at all, so it cannot reach a
// service on the host's loopback. The old code dialled remote servers
// anywhere and gave local ones the runtime's network.
func TestMCPServersNetwork(t *testing.T) {
	url, _ := mcptest.NewHTTP(t, "")
	has := func(rg *rig, prefix string) bool {
		for _, tl := range rg.rt.ag.Tools() {
			if strings.HasPrefix(tl.Spec().Name, prefix) {
				return true
			}
		}
		return false
	}
	remote := map[string]mcptools.Config{"far": {Type: mcptools.TypeRemote, URL: url}}
	if rg := newRig(t, func(c *Config) { c.MCPServers = remote }); has(rg, "far_") {
		t.Fatalf("a remote MCP server on the host's loopback was reached under the default egress policy")
	}
	if rg := newRig(t, func(c *Config) { c.MCPServers = remote; c.EgressAllow = "127.0.0.1" }); !has(rg, "far_") {
		t.Fatalf("a remote MCP server the operator allowed was left out")
	}

	if testSandbox != SandboxBwrap {
		t.Skip("local MCP servers run in bubblewrap only with the sandbox")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	cmd, env := mcptest.Command()
	rg := newRig(t, func(c *Config) {
		c.MCPServers = map[string]mcptools.Config{"near": {Type: mcptools.TypeLocal, Command: cmd, Environment: env}}
		c.EgressAllow = "127.0.0.1" // the operator's allowance is for the policy's dialer, not a way around it
	})
	res := rg.send(t, "", `use near_dial {"name": "`+ln.Addr().String()+`"}`)
	p := rg.pendingPermission(t)
	if err := rg.c.ReplyPermission(ctxT(t), p.ID, coding.Reply{Reply: coding.ReplyOnce}); err != nil {
		t.Fatal(err)
	}
	rg.waitIdle(t)
	parts := toolParts(rg.history(t, res.SessionID))
	if len(parts) != 1 || parts[0].State.Status != "completed" || !strings.Contains(parts[0].State.Output, "not connected") {
		t.Fatalf("a local MCP server dialled the host's loopback: %+v", parts)
	}
}
