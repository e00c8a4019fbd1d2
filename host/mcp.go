package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/agent/mcptools"
)

// mcpServers are the MCP servers of mcp_servers, opened once in New and
// shared by every agent the host builds; Shutdown closes them. A reload
// keeps them: changing mcp_servers takes a restart.
type mcpServers struct {
	cfg     map[string]mcptools.Config
	servers []*mcptools.Server
}

// openMCP opens the enabled servers of cfg, in name order (so tool names
// that collide are renamed the same way every time), and starts them, so
// that a server that cannot start fails New. "{env:NAME}" is read from the
// process environment.
func openMCP(ctx context.Context, cfg map[string]mcptools.Config, dir string, log *slog.Logger) (*mcpServers, error) {
	m := &mcpServers{cfg: cfg}
	names := make([]string, 0, len(cfg))
	for name := range cfg {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		c := cfg[name]
		if !c.On() {
			continue
		}
		s, err := mcptools.Open(name, c, os.LookupEnv, mcptools.WithDir(dir), mcptools.WithLogger(log))
		if err != nil {
			m.close()
			return nil, fmt.Errorf("%w: mcp_servers: %w", ErrConfig, err)
		}
		m.servers = append(m.servers, s)
		if err := s.Start(ctx); err != nil {
			m.close()
			return nil, fmt.Errorf("mcp_servers: %w", err)
		}
		log.Info("MCP server ready", "mcp_server", name, "type", c.Type)
	}
	return m, nil
}

// option gives an agent the servers' tools; nil without servers.
func (m *mcpServers) option() agent.Option {
	if m == nil || len(m.servers) == 0 {
		return nil
	}
	sets := make([]agent.Toolset, len(m.servers))
	for i, s := range m.servers {
		sets[i] = s
	}
	return agent.WithMCP(sets...)
}

// changed reports whether cfg asks for other servers than the open ones.
func (m *mcpServers) changed(cfg map[string]mcptools.Config) bool {
	var open map[string]mcptools.Config
	if m != nil {
		open = m.cfg
	}
	if len(open) == 0 && len(cfg) == 0 {
		return false
	}
	return !reflect.DeepEqual(open, cfg)
}

// close stops every server, waiting for their processes to end.
func (m *mcpServers) close() error {
	if m == nil {
		return nil
	}
	var errs []error
	for _, s := range m.servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
