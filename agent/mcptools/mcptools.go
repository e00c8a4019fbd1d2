// Package mcptools gives agents the tools of MCP servers: a local server the
// package starts as a process and speaks to over stdio, or a remote one
// reached over MCP's Streamable HTTP transport.
//
//	fs := mcptools.Command("fs", []string{"npx", "-y", "@modelcontextprotocol/server-filesystem", "/data"})
//	defer fs.Close()
//	a, err := agent.New("librarian", agent.WithMCP(fs))
//
// A Server is one long-lived connection that many agents share: a host
// builds an agent per request, and each one gets the tools listed once (and
// again after the server says its list changed). Each tool appears to the
// model as "server_tool" with the server's own JSON schema, and runs like
// any other tool of the agent, so a host's approval rules apply to it by
// that name.
//
// A server is started on first use (or by Start), stopped by Close, and
// never left to hang a run: starting and listing are bounded by the start
// timeout, each call by the call timeout and the run's context. A local
// server that has exited is started again on the next call; a call the
// server dies during fails with ErrServerExited, which the model reads as
// the tool's error. Closing a local server stops its whole process group.
//
// Importing this package links the MCP Go SDK; importing agent alone does
// not.
package mcptools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/version"
	"github.com/agenthost/agenthost/llm"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Defaults of the timeouts and the output bound.
const (
	DefaultStartTimeout = 30 * time.Second
	DefaultCallTimeout  = 5 * time.Minute
	DefaultMaxOutput    = 1 << 20
)

// Errors a Server's tools and methods return, for errors.Is.
var (
	// ErrUnavailable: the server could not be started, reached or
	// initialised, or did not list its tools in time.
	ErrUnavailable = errors.New("MCP server unavailable")
	// ErrServerExited: the connection to the server ended during a call.
	// The next call starts it again.
	ErrServerExited = errors.New("MCP server exited during the call")
	// ErrCallTimeout: a call ran past the call timeout.
	ErrCallTimeout = errors.New("MCP tool call timed out")
	// ErrClosed: the Server was closed.
	ErrClosed = errors.New("MCP server closed")
)

// ToolError is a tool's own failure (the server's result had isError set);
// Message is what the tool said.
type ToolError struct {
	Server, Tool, Message string
}

func (e *ToolError) Error() string {
	return fmt.Sprintf("MCP tool %s of server %s failed: %s", e.Tool, e.Server, e.Message)
}

// Server is a connection to one MCP server, shared by the agents that use
// its tools. Its methods are safe for concurrent use.
type Server struct {
	name   string
	prefix string
	o      options
	log    *slog.Logger
	// dial makes the transport of one connection; local servers also
	// return their process, which Close stops.
	dial func() (mcp.Transport, *process, error)
	// err is a configuration error, returned by every use.
	err error

	// stopping ends when Close is called: a start in progress gives up.
	stopping context.Context
	stop     context.CancelFunc
	connMu   sync.Mutex // serialises starting
	mu       sync.Mutex
	conn     *conn
	tools    []agent.Tool
	listed   bool
	stale    bool
	closed   bool
	starts   int
	wg       sync.WaitGroup // connection watchers
}

// conn is one session with the server: a local server's one process.
type conn struct {
	cs   *mcp.ClientSession
	proc *process
	done chan struct{} // closed when the session has ended
}

type options struct {
	env       map[string]string
	dir       string
	headers   map[string]string
	start     time.Duration
	call      time.Duration
	maxOutput int
	logger    *slog.Logger
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Option configures a Server.
type Option func(*options)

// WithEnv sets variables of a local server's environment. The server
// inherits only a few variables of this process (PATH, HOME, USER,
// LOGNAME, SHELL, TERM, LANG, TMPDIR), never its API keys; pass what it
// needs here.
func WithEnv(env map[string]string) Option {
	return func(o *options) {
		if o.env == nil {
			o.env = map[string]string{}
		}
		for k, v := range env {
			o.env[k] = v
		}
	}
}

// WithDialer makes a remote server's connections through dial, which
// decides where this program may connect (an egress policy): an agent's
// configuration then cannot point a remote server at an address the
// policy refuses. Proxy variables of the environment are not used.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *options) { o.dial = dial }
}

// WithDir sets a local server's working directory (default: this
// process's).
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithHeaders sets HTTP headers sent with every request to a remote
// server, such as Authorization.
func WithHeaders(h map[string]string) Option {
	return func(o *options) {
		if o.headers == nil {
			o.headers = map[string]string{}
		}
		for k, v := range h {
			o.headers[k] = v
		}
	}
}

// WithStartTimeout bounds starting the server (or connecting to it) and
// listing its tools (default 30s).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.start = d } }

// WithCallTimeout bounds each tool call (default 5 minutes); a call that
// runs longer fails with ErrCallTimeout.
func WithCallTimeout(d time.Duration) Option { return func(o *options) { o.call = d } }

// WithMaxOutput bounds the text of one tool result given to the model
// (default 1 MiB); the rest is cut and the cut is said.
func WithMaxOutput(bytes int) Option { return func(o *options) { o.maxOutput = bytes } }

// WithLogger sets the logger for the server's lifecycle: starts, exits,
// the tail of a failed local server's stderr (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func newServer(name string, opts []Option) *Server {
	s := &Server{name: name, prefix: sanitize(name) + "_"}
	s.stopping, s.stop = context.WithCancel(context.Background())
	for _, opt := range opts {
		opt(&s.o)
	}
	if s.o.start <= 0 {
		s.o.start = DefaultStartTimeout
	}
	if s.o.call <= 0 {
		s.o.call = DefaultCallTimeout
	}
	if s.o.maxOutput <= 0 {
		s.o.maxOutput = DefaultMaxOutput
	}
	s.log = s.o.logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("mcp_server", name)
	if name == "" {
		s.err = errors.New("mcptools: a server needs a name")
	}
	return s
}

// Command returns a local server: command[0] run with the arguments
// command[1:], spoken to over its stdin and stdout. Nothing starts until
// the first use (Start, Tools, a call).
func Command(name string, command []string, opts ...Option) *Server {
	s := newServer(name, opts)
	if len(command) == 0 || command[0] == "" {
		s.err = fmt.Errorf("mcptools: server %s: the command is empty; want [program, args...]", name)
	}
	command = append([]string(nil), command...)
	s.dial = func() (mcp.Transport, *process, error) {
		p, err := newProcess(command, s.o.env, s.o.dir)
		if err != nil {
			return nil, nil, err
		}
		return p.transport(), p, nil
	}
	return s
}

// Remote returns a server reached over Streamable HTTP at url, sending
// the WithHeaders headers. Nothing is dialled until the first use.
func Remote(name, url string, opts ...Option) *Server {
	s := newServer(name, opts)
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		s.err = fmt.Errorf("mcptools: server %s: url %q: want http:// or https://", name, url)
	}
	headers := s.o.headers
	s.dial = func() (mcp.Transport, *process, error) {
		// One HTTP transport per connection, so that closing it closes
		// its idle connections and leaves no goroutine behind.
		rt := http.DefaultTransport.(*http.Transport).Clone()
		if s.o.dial != nil {
			rt.DialContext, rt.Proxy = s.o.dial, nil
		}
		hc := &http.Client{Transport: &headerTransport{base: rt, headers: headers}}
		return &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: 2}, &process{idle: rt}, nil
	}
	return s
}

// headerTransport adds fixed headers to every request.
type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range t.headers {
			r.Header.Set(k, v)
		}
	}
	return t.base.RoundTrip(r)
}

// Name returns the server's name, the prefix of its tools' names.
func (s *Server) Name() string { return s.name }

// Start starts the server (or connects to it) and lists its tools, so
// that a misconfigured server fails now rather than at its first use.
func (s *Server) Start(ctx context.Context) error {
	_, err := s.Tools(ctx)
	return err
}

// Tools implements agent.Toolset: the server's tools, listed on first use
// and again after the server announces a change. When a relisting fails
// the tools listed before are kept.
func (s *Server) Tools(ctx context.Context) ([]agent.Tool, error) {
	if s.err != nil {
		return nil, s.err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", s.name, ErrClosed)
	}
	if s.listed && !s.stale {
		tools := s.tools
		s.mu.Unlock()
		return tools, nil
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.o.start)
	defer cancel()
	tools, err := s.list(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.listed {
			s.log.Warn("relisting the MCP server's tools failed; keeping the previous list", "err", err)
			return s.tools, nil
		}
		return nil, err
	}
	s.tools, s.listed, s.stale = tools, true, false
	return tools, nil
}

// list asks the server for its tools.
func (s *Server) list(ctx context.Context) ([]agent.Tool, error) {
	c, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	var tools []agent.Tool
	for t, err := range c.cs.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("%w: %s: listing tools: %w%s", ErrUnavailable, s.name, err, c.proc.stderrNote())
		}
		tools = append(tools, s.newTool(t))
	}
	return tools, nil
}

// connect returns the live session, starting one when there is none (a
// first use, or a server that exited).
func (s *Server) connect(ctx context.Context) (*conn, error) {
	if c, err := s.live(); c != nil || err != nil {
		return c, err
	}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if c, err := s.live(); c != nil || err != nil {
		return c, err
	}
	t, proc, err := s.dial()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, s.name, err)
	}
	cl := mcp.NewClient(&mcp.Implementation{Name: "agenthost", Version: version.String()}, &mcp.ClientOptions{
		Logger: s.log,
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			s.mu.Lock()
			s.stale = true
			s.mu.Unlock()
		},
	})
	ctx, cancel := context.WithTimeout(ctx, s.o.start)
	defer cancel()
	defer context.AfterFunc(s.stopping, cancel)()
	cs, err := cl.Connect(ctx, t, nil)
	if err != nil {
		proc.stop()
		return nil, fmt.Errorf("%w: %s: %w%s", ErrUnavailable, s.name, err, proc.stderrNote())
	}
	c := &conn{cs: cs, proc: proc, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cs.Close()
		proc.stop()
		return nil, fmt.Errorf("%s: %w", s.name, ErrClosed)
	}
	s.conn = c
	s.starts++
	if s.starts > 1 {
		s.log.Info("MCP server started again", "starts", s.starts)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.watch(c)
	return c, nil
}

// live returns the current session if it has not ended.
func (s *Server) live() (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%s: %w", s.name, ErrClosed)
	}
	if s.conn == nil {
		return nil, nil
	}
	select {
	case <-s.conn.done:
		s.conn = nil
		return nil, nil
	default:
		return s.conn, nil
	}
}

// watch waits for the session to end, then stops what is left of it.
func (s *Server) watch(c *conn) {
	defer s.wg.Done()
	c.cs.Wait()
	c.cs.Close()
	c.proc.stop()
	s.mu.Lock()
	closing := s.closed
	if s.conn == c {
		s.conn = nil
	}
	s.mu.Unlock()
	close(c.done)
	if !closing {
		s.log.Warn("MCP server connection ended; the next call starts it again", "stderr", c.proc.stderrTail())
	}
}

// drop forgets c after a call found it closed, so the next call starts a
// new session even before the watcher has seen the end.
func (s *Server) drop(c *conn) {
	s.mu.Lock()
	if s.conn == c {
		s.conn = nil
	}
	s.mu.Unlock()
	c.cs.Close()
}

// Close stops the server: a local server's stdin is closed, then its
// process group is killed if it has not exited, and Close returns once its
// process and this Server's goroutines are gone. Calls in flight fail. It is
// safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	// A start in progress gives up and cleans up after itself.
	s.stop()
	s.connMu.Lock()
	s.connMu.Unlock() //nolint:staticcheck // waiting for it, not guarding
	if c != nil {
		c.cs.Close()
		c.proc.stop()
	}
	s.wg.Wait()
	return nil
}

// Starts reports how many times the server has been started (or
// connected to): 1 after the first use, one more after each restart.
func (s *Server) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// tool is one of the server's tools as the agent sees it.
type tool struct {
	s      *Server
	remote string
	spec   llm.ToolSpec
}

func (s *Server) newTool(t *mcp.Tool) *tool {
	schema, err := json.Marshal(t.InputSchema)
	if err != nil || t.InputSchema == nil || string(schema) == "null" {
		schema = json.RawMessage(`{"type":"object"}`)
	}
	desc := t.Description
	if desc == "" {
		desc = t.Title
	}
	if desc == "" {
		desc = fmt.Sprintf("Tool %s of the MCP server %s.", t.Name, s.name)
	}
	return &tool{s: s, remote: t.Name, spec: llm.ToolSpec{Name: toolName(s.prefix, t.Name), Description: desc, Parameters: schema}}
}

func (t *tool) Spec() llm.ToolSpec { return t.spec }

func (t *tool) Call(ctx context.Context, args json.RawMessage) (string, error) {
	return t.s.call(ctx, t.remote, t.spec.Name, args)
}

// call runs the server's tool remote.
func (s *Server) call(ctx context.Context, remote, local string, args json.RawMessage) (string, error) {
	if s.err != nil {
		return "", s.err
	}
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	var obj map[string]any
	if err := json.Unmarshal(args, &obj); err != nil {
		return "", &agent.ArgumentError{Tool: local, Err: fmt.Errorf("arguments must be a JSON object: %w", err)}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.o.call, ErrCallTimeout)
	defer cancel()
	c, err := s.connect(ctx)
	if err != nil {
		return "", err
	}
	res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: remote, Arguments: args})
	switch {
	case err == nil:
	case errors.Is(context.Cause(ctx), ErrCallTimeout):
		return "", fmt.Errorf("%w: %s of server %s, after %s", ErrCallTimeout, remote, s.name, s.o.call)
	case ctx.Err() != nil:
		return "", fmt.Errorf("MCP tool %s of server %s: %w", remote, s.name, context.Cause(ctx))
	case errors.Is(err, mcp.ErrConnectionClosed) || errors.Is(err, mcp.ErrSessionMissing) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		s.drop(c)
		return "", fmt.Errorf("%w: %s (tool %s)%s", ErrServerExited, s.name, remote, c.proc.stderrNote())
	default:
		return "", fmt.Errorf("MCP tool %s of server %s: %w", remote, s.name, err)
	}
	text := render(res, s.o.maxOutput)
	if res.IsError {
		return "", &ToolError{Server: s.name, Tool: remote, Message: text}
	}
	return text, nil
}
