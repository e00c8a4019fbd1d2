package agents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/agenthost/agenthost/agent/mcptools"
)

// EnvMCPServers carries an agent's MCP servers to its runtime: the JSON
// object of CreateRequest.MCPServers, in OpenCode's shape (docs/mcp.md).
const EnvMCPServers = "AGENTHOST_MCP_SERVERS"

// MaxMCPServersLen bounds an agent's mcpServers, as JSON.
const MaxMCPServersLen = 64 << 10

// ParseMCPServers reads mcpServers: a JSON object of named servers in
// OpenCode's shape, every field known and every server valid. Its
// "{env:NAME}" references name the organisation's secrets, which is how a
// server gets a token (the runtime resolves them against the secrets it
// was given, and nothing else of its environment).
func ParseMCPServers(raw json.RawMessage) (map[string]mcptools.Config, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if len(raw) > MaxMCPServersLen {
		return nil, &InvalidError{"mcpServers", fmt.Sprintf("must be at most %d bytes of JSON", MaxMCPServersLen)}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m map[string]mcptools.Config
	if err := dec.Decode(&m); err != nil {
		return nil, &InvalidError{"mcpServers", "must be an object of named servers, each {type, command, environment} or {type, url, headers}: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &InvalidError{"mcpServers", "must be one JSON object"}
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := m[name].Validate(name); err != nil {
			return nil, &InvalidError{"mcpServers", strings.TrimPrefix(err.Error(), mcptools.ErrConfig.Error()+": ")}
		}
	}
	return m, nil
}

// compactJSON is raw without insignificant space; nil for none.
func compactJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil // validate refused it already
	}
	return b.Bytes()
}
