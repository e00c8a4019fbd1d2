package mcptools

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config describes one MCP server in the shape OpenCode's "mcp" settings
// use, so the same entry works in OpenCode, in host.yaml's mcp_servers and
// in Go:
//
//	{"type": "local", "command": ["npx", "-y", "some-server"], "environment": {"KEY": "{env:KEY}"}}
//	{"type": "remote", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer {env:TOKEN}"}}
//
// "{env:NAME}" in environment values and headers is replaced by the
// variable NAME of this process, so secrets stay out of the file; a
// variable that is not set is an error.
type Config struct {
	// Type is "local" (a command spoken to over stdio) or "remote" (a
	// Streamable HTTP URL).
	Type string `json:"type" yaml:"type"`
	// Command is the program and its arguments (local).
	Command []string `json:"command,omitempty" yaml:"command,omitempty"`
	// Environment adds variables to the server's environment (local).
	Environment map[string]string `json:"environment,omitempty" yaml:"environment,omitempty"`
	// URL is the server's Streamable HTTP endpoint (remote).
	URL string `json:"url,omitempty" yaml:"url,omitempty"`
	// Headers are sent with every request (remote).
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	// Enabled false leaves the server out; absent means true.
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// Timeout bounds starting the server and listing its tools, in
	// milliseconds (default 30000).
	Timeout int `json:"timeout,omitempty" yaml:"timeout,omitempty"`
}

// The server types.
const (
	TypeLocal  = "local"
	TypeRemote = "remote"
)

// ErrConfig wraps every error in a Config.
var ErrConfig = errors.New("invalid MCP server configuration")

// On reports whether the server is enabled.
func (c Config) On() bool { return c.Enabled == nil || *c.Enabled }

// Validate checks c without reading the environment.
func (c Config) Validate(name string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: server %q: %s", ErrConfig, name, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("%w: a server needs a name", ErrConfig)
	}
	if c.Timeout < 0 {
		return bad("timeout must be positive milliseconds, got %d", c.Timeout)
	}
	switch c.Type {
	case TypeLocal:
		if len(c.Command) == 0 || strings.TrimSpace(c.Command[0]) == "" {
			return bad(`type "local" needs a command: a list, the program then its arguments (["npx", "-y", "some-server"])`)
		}
		if c.URL != "" || len(c.Headers) > 0 {
			return bad(`url and headers are for type "remote"`)
		}
	case TypeRemote:
		if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
			return bad(`type "remote" needs a url starting with http:// or https://, got %q`, c.URL)
		}
		if len(c.Command) > 0 || len(c.Environment) > 0 {
			return bad(`command and environment are for type "local"`)
		}
	case "":
		return bad(`type is missing: want "local" (a command) or "remote" (a url)`)
	default:
		return bad(`type %q: want "local" (a command) or "remote" (a url)`, c.Type)
	}
	for _, m := range []map[string]string{c.Environment, c.Headers} {
		for k, v := range m {
			if _, err := expand(v, func(string) (string, bool) { return "", true }); err != nil {
				return bad("%s: %v", k, err)
			}
		}
	}
	return nil
}

// Open validates c, replaces "{env:NAME}" with lookup(NAME) in its
// environment and headers, and returns the Server it describes (not
// started). opts come before the ones c implies, so c's timeout wins.
func Open(name string, c Config, lookup func(string) (string, bool), opts ...Option) (*Server, error) {
	if err := c.Validate(name); err != nil {
		return nil, err
	}
	resolve := func(m map[string]string, what string) (map[string]string, error) {
		out := make(map[string]string, len(m))
		for k, v := range m {
			x, err := expand(v, lookup)
			if err != nil {
				return nil, fmt.Errorf("%w: server %q: %s %s: %v", ErrConfig, name, what, k, err)
			}
			out[k] = x
		}
		return out, nil
	}
	env, err := resolve(c.Environment, "environment")
	if err != nil {
		return nil, err
	}
	headers, err := resolve(c.Headers, "header")
	if err != nil {
		return nil, err
	}
	opts = slices.Clone(opts)
	if c.Timeout > 0 {
		opts = append(opts, WithStartTimeout(time.Duration(c.Timeout)*time.Millisecond))
	}
	if c.Type == TypeLocal {
		return Command(name, c.Command, append(opts, WithEnv(env))...), nil
	}
	return Remote(name, c.URL, append(opts, WithHeaders(headers))...), nil
}

var envRef = regexp.MustCompile(`\{env:([^{}]*)\}`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces each "{env:NAME}" in s by lookup(NAME).
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var err error
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		name := envRef.FindStringSubmatch(m)[1]
		if !envName.MatchString(name) {
			err = errors.Join(err, fmt.Errorf("{env:%s}: not a variable name", name))
			return ""
		}
		v, ok := lookup(name)
		if !ok {
			err = errors.Join(err, fmt.Errorf("{env:%s}: the variable %s is not set in the environment", name, name))
			return ""
		}
		return v
	})
	if err != nil {
		return "", err
	}
	return out, nil
}
