// Package mcptest is a real MCP server, built with the MCP Go SDK, for the
// tests of the packages that speak MCP: served over stdio by a test binary
// that runs itself (ServeStdioIfAsked in TestMain) or over Streamable HTTP
// on 127.0.0.1 (NewHTTP).
//
// Its tools: echo {text}, add {a, b}, fail (a tool error), crash (the
// process exits mid-call; stdio only), slow {marker} (creates the file
// marker, then waits for cancellation),
// spawn (starts a child process that sleeps, returns its pid), env {name}
// (a variable of the server's environment), big {n} (n bytes of text) and
// pid (the server's process id).
package mcptest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// EnvServe, set to "stdio" in a test binary's environment, makes
// ServeStdioIfAsked serve MCP on stdin/stdout instead of running tests.
const EnvServe = "AGENTHOST_MCPTEST"

// Counter counts calls of the echo tool and calls of slow that were
// cancelled.
type Counter struct{ echo, cancelled atomic.Int64 }

// Echo returns how many times echo was called.
func (c *Counter) Echo() int64 { return c.echo.Load() }

// Cancelled returns how many calls of slow the client cancelled.
func (c *Counter) Cancelled() int64 { return c.cancelled.Load() }

type textArgs struct {
	Text string `json:"text" jsonschema:"the text to echo"`
}

type addArgs struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

type sum struct {
	Sum float64 `json:"sum"`
}

type nameArgs struct {
	Name string `json:"name"`
}

type sizeArgs struct {
	N int `json:"n"`
}

type none struct{}

type markerArgs struct {
	Marker string `json:"marker,omitempty" jsonschema:"a file to create once the call has started"`
}

// NewServer returns the test server; c, when not nil, counts calls.
func NewServer(c *Counter) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcptest", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo the text back."},
		func(_ context.Context, _ *mcp.CallToolRequest, a textArgs) (*mcp.CallToolResult, any, error) {
			if c != nil {
				c.echo.Add(1)
			}
			return text("echo: " + a.Text), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Add two numbers."},
		func(_ context.Context, _ *mcp.CallToolRequest, a addArgs) (*mcp.CallToolResult, sum, error) {
			return nil, sum{a.A + a.B}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "fail", Description: "Always fails."},
		func(context.Context, *mcp.CallToolRequest, none) (*mcp.CallToolResult, any, error) {
			return nil, nil, fmt.Errorf("this tool always fails")
		})
	mcp.AddTool(s, &mcp.Tool{Name: "crash", Description: "Exits the server mid-call."},
		func(context.Context, *mcp.CallToolRequest, none) (*mcp.CallToolResult, any, error) {
			fmt.Fprintln(os.Stderr, "mcptest: crashing as asked")
			os.Exit(3)
			return nil, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "Waits until cancelled."},
		func(ctx context.Context, _ *mcp.CallToolRequest, a markerArgs) (*mcp.CallToolResult, any, error) {
			if a.Marker != "" {
				if err := os.WriteFile(a.Marker, nil, 0o600); err != nil {
					return nil, nil, err
				}
			}
			<-ctx.Done()
			if c != nil {
				c.cancelled.Add(1)
			}
			return nil, nil, ctx.Err()
		})
	mcp.AddTool(s, &mcp.Tool{Name: "spawn", Description: "Start a child process that sleeps; returns its pid."},
		func(context.Context, *mcp.CallToolRequest, none) (*mcp.CallToolResult, any, error) {
			cmd := exec.Command("sleep", "600")
			if err := cmd.Start(); err != nil {
				return nil, nil, err
			}
			go cmd.Wait()
			return text(fmt.Sprint(cmd.Process.Pid)), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "env", Description: "A variable of the server's environment."},
		func(_ context.Context, _ *mcp.CallToolRequest, a nameArgs) (*mcp.CallToolResult, any, error) {
			v, ok := os.LookupEnv(a.Name)
			if !ok {
				return text("unset"), nil, nil
			}
			return text("set:" + v), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "big", Description: "Return n bytes of text."},
		func(_ context.Context, _ *mcp.CallToolRequest, a sizeArgs) (*mcp.CallToolResult, any, error) {
			return text(strings.Repeat("x", a.N)), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "dial", Description: "Open a TCP connection to name (host:port); say whether it connected."},
		func(ctx context.Context, _ *mcp.CallToolRequest, a nameArgs) (*mcp.CallToolResult, any, error) {
			d := net.Dialer{Timeout: 5 * time.Second}
			c, err := d.DialContext(ctx, "tcp", a.Name)
			if err != nil {
				return text("not connected: " + err.Error()), nil, nil
			}
			c.Close()
			return text("connected"), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "pid", Description: "The server's process id."},
		func(context.Context, *mcp.CallToolRequest, none) (*mcp.CallToolResult, any, error) {
			return text(fmt.Sprint(os.Getpid())), nil, nil
		})
	return s
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// ServeStdioIfAsked serves the test server on stdin/stdout and exits when
// EnvServe is "stdio"; otherwise it returns at once. Call it first in
// TestMain.
func ServeStdioIfAsked() {
	if os.Getenv(EnvServe) != "stdio" {
		return
	}
	if err := NewServer(nil).Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "mcptest:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Command is the command line of the stdio test server (this test binary)
// and the environment it needs. Under -race the binary would sleep a
// second at exit; GORACE turns that off.
func Command() ([]string, map[string]string) {
	return []string{os.Args[0]}, map[string]string{EnvServe: "stdio", "GORACE": "atexit_sleep_ms=0"}
}

// NewHTTP serves the test server over Streamable HTTP on 127.0.0.1 until
// the test ends. With header != "", requests without that header
// (name: value) are refused with 401.
func NewHTTP(t testing.TB, header string) (url string, c *Counter) {
	t.Helper()
	c = &Counter{}
	srv := NewServer(c)
	h := http.Handler(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	if header != "" {
		name, value, _ := strings.Cut(header, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(name) != value {
				http.Error(w, "missing "+name, http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	ts := httptest.NewServer(h) // on 127.0.0.1:0
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp", c
}
