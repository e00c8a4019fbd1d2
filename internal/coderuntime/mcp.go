package coderuntime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/agent/mcptools"
)

// EnvMCPServers is AGENTHOST_MCP_SERVERS: the agent's MCP servers, a JSON
// object in OpenCode's shape (docs/mcp.md), as the platform's mcpServers.
const EnvMCPServers = "AGENTHOST_MCP_SERVERS"

// mcpFromEnv reads AGENTHOST_MCP_SERVERS.
func mcpFromEnv(getenv func(string) string) (map[string]mcptools.Config, error) {
	raw := strings.TrimSpace(getenv(EnvMCPServers))
	if raw == "" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	var m map[string]mcptools.Config
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvMCPServers, err)
	}
	return m, nil
}

// openMCP starts the enabled servers of cfg, in name order, in the
// workspace. "{env:NAME}" resolves against the tools' variables (the
// organisation's secrets, AGENTHOST_TOOL_ENV) only: never the control
// token or the operator's model keys, which this process holds. A local
// server's environment is built from a few neutral variables and its own
// (mcptools), and it runs as this runtime's user, in the runtime's
// sandbox (the driver's: own uid, cgroup limits) and, unless
// AGENTHOST_SANDBOX=none, in bubblewrap (mcpBwrap) with the runtime's data
// directory hidden, a /proc of its own and no network; a remote server is
// dialled under the tools' egress policy. Before a local server starts
// this process is also made non-dumpable (protectFromChildren), so even
// without bubblewrap the server cannot read this process's environment
// through /proc. A server that cannot start is left
// out and logged, so one broken server does not keep the agent from
// running; its tools are then missing.
func openMCP(ctx context.Context, rc *Config, ws string, log *slog.Logger) ([]*mcptools.Server, error) {
	cfg, toolEnv := rc.MCPServers, rc.ToolEnv
	var bwrap string
	for _, c := range cfg {
		if c.On() && c.Type == mcptools.TypeLocal {
			if err := protectFromChildren(); err != nil {
				return nil, fmt.Errorf("protecting the runtime from its MCP servers: %w", err)
			}
			if rc.Sandbox == SandboxBwrap {
				p, err := exec.LookPath("bwrap")
				if err != nil {
					return nil, fmt.Errorf("local MCP servers run in bubblewrap, which is missing: %w", err)
				}
				bwrap = p
			}
			break
		}
	}
	vars := make(map[string]string, len(toolEnv))
	for _, kv := range toolEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	names := make([]string, 0, len(cfg))
	for name := range cfg {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []*mcptools.Server
	for _, name := range names {
		c := cfg[name]
		if !c.On() {
			continue
		}
		if c.Type == mcptools.TypeLocal && bwrap != "" {
			c.Command = mcpBwrap(bwrap, ws, rc.DataDir, c.Command)
		}
		opts := []mcptools.Option{mcptools.WithDir(ws), mcptools.WithLogger(log)}
		if rc.Tools.Egress != nil {
			// A remote server is reached under the tools' egress policy:
			// not the host's loopback, link-local or private addresses.
			opts = append(opts, mcptools.WithDialer(rc.Tools.Egress.DialContext))
		}
		s, err := mcptools.Open(name, c, lookup, opts...)
		if err != nil {
			log.Error("MCP server left out: its configuration", "mcp_server", name, "err", err)
			continue
		}
		if err := s.Start(ctx); err != nil {
			log.Error("MCP server left out: it did not start", "mcp_server", name, "err", err)
			s.Close()
			continue
		}
		log.Info("MCP server ready", "mcp_server", name, "type", c.Type)
		out = append(out, s)
	}
	return out, nil
}

// mcpOption gives the agent the servers' tools; nil without servers.
func mcpOption(servers []*mcptools.Server) agent.Option {
	if len(servers) == 0 {
		return nil
	}
	sets := make([]agent.Toolset, len(servers))
	for i, s := range servers {
		sets[i] = s
	}
	return agent.WithMCP(sets...)
}

func closeMCP(servers []*mcptools.Server) {
	for _, s := range servers {
		s.Close()
	}
}

// mcpBwrap wraps a local MCP server's command in bubblewrap: the machine
// read-only as this runtime's user sees it, the workspace read-write (its
// working directory), the runtime's data directory (database, egress
// socket) covered by an empty tmpfs, its own pid namespace and /proc (the
// runtime's process is not there to read), and it dies with the runtime.
// stdin and stdout pass through, so MCP's stdio transport works as it is.
// It has no network (a network namespace of its own with nothing in it):
// the runtime's network reaches the host's loopback, which the tools'
// egress policy refuses; a server that needs the network is configured as
// a remote one, which the runtime reaches under that policy.
func mcpBwrap(bwrap, ws, dataDir string, command []string) []string {
	args := []string{bwrap, "--ro-bind", "/", "/", "--bind", ws, ws}
	if dataDir != "" {
		args = append(args, "--tmpfs", dataDir)
	}
	args = append(args, "--dev", "/dev", "--proc", "/proc", "--unshare-pid", "--unshare-net", "--die-with-parent", "--new-session", "--chdir", ws, "--")
	return append(args, command...)
}
