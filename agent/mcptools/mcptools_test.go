package mcptools_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/agent/mcptools"
	"github.com/agenthost/agenthost/internal/mcptest"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/llm"
)

// TestMain serves the test MCP server when this binary is started as one,
// and otherwise runs the tests, failing if a goroutine outlives them.
func TestMain(m *testing.M) {
	mcptest.ServeStdioIfAsked()
	goleak.VerifyTestMain(m)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stdio returns the test server as a local server (this binary, run again).
func stdio(t *testing.T, name string, opts ...mcptools.Option) *mcptools.Server {
	t.Helper()
	cmd, env := mcptest.Command()
	s := mcptools.Command(name, cmd, append([]mcptools.Option{mcptools.WithEnv(env), mcptools.WithLogger(quiet)}, opts...)...)
	t.Cleanup(func() { s.Close() })
	return s
}

// remote returns the test server over Streamable HTTP on 127.0.0.1.
func remote(t *testing.T, name string, opts ...mcptools.Option) *mcptools.Server {
	t.Helper()
	url, _ := mcptest.NewHTTP(t, "")
	s := mcptools.Remote(name, url, append([]mcptools.Option{mcptools.WithLogger(quiet)}, opts...)...)
	t.Cleanup(func() { s.Close() })
	return s
}

// ask runs one prompt on a and returns the result and the tool outcomes.
func ask(t *testing.T, ctx context.Context, a *agent.Agent, prompt string) (*agent.Result, []*agent.ToolOutcome) {
	t.Helper()
	var conv agent.Conversation
	var res *agent.Result
	var outs []*agent.ToolOutcome
	for ev := range a.Run(ctx, &conv, []llm.Message{llm.UserText(prompt)}) {
		switch ev.Type {
		case agent.EventResult:
			res = ev.Result
		case agent.EventToolResult:
			outs = append(outs, ev.ToolResult)
		}
	}
	return res, outs
}

func toolByName(t *testing.T, a *agent.Agent, name string) agent.Tool {
	t.Helper()
	for _, tl := range a.Tools() {
		if tl.Spec().Name == name {
			return tl
		}
	}
	t.Fatalf("no tool %s in %v", name, a.ToolNames())
	return nil
}

// TestAgentUsesServerTools: over stdio and over Streamable HTTP, a real MCP
// server's tools appear to the model namespaced with the server's schemas,
// and the offline model calls them through the agent loop.
func TestAgentUsesServerTools(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(*testing.T, string, ...mcptools.Option) *mcptools.Server
	}{{"stdio", stdio}, {"http", remote}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.open(t, "files")
			a, err := agent.New("librarian", agent.WithMCP(srv))
			if err != nil {
				t.Fatal(err)
			}
			names := strings.Join(a.ToolNames(), " ")
			for _, want := range []string{"files_echo", "files_add", "files_fail"} {
				if !strings.Contains(names, want) {
					t.Fatalf("tools %s lack %s", names, want)
				}
			}
			var schema struct {
				Type       string `json:"type"`
				Properties map[string]struct {
					Description string `json:"description"`
				} `json:"properties"`
			}
			echo := toolByName(t, a, "files_echo")
			if err := json.Unmarshal(echo.Spec().Parameters, &schema); err != nil || schema.Type != "object" ||
				schema.Properties["text"].Description != "the text to echo" || echo.Spec().Description != "Echo the text back." {
				t.Fatalf("echo's spec: %+v %s", echo.Spec(), echo.Spec().Parameters)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, outs := ask(t, ctx, a, `use files_echo {"text": "hello mcp"}`)
			if res.Status != agent.StatusCompleted || len(outs) != 1 || outs[0].Status != agent.ToolCompleted ||
				outs[0].Output != "echo: hello mcp" || !strings.Contains(res.Text, "echo: hello mcp") {
				t.Fatalf("echo run: %+v %+v", res, outs)
			}
			res, outs = ask(t, ctx, a, `use files_add {"a": 2, "b": 3}`)
			if len(outs) != 1 || outs[0].Output != `{"sum":5}` {
				t.Fatalf("add run: %+v %+v", res, outs)
			}
			// Another agent built on the same server reuses its connection.
			if _, err := agent.New("second", agent.WithMCP(srv)); err != nil || srv.Starts() != 1 {
				t.Fatalf("second agent: %v, starts %d", err, srv.Starts())
			}
		})
	}
}

// TestNamesDoNotCollide: a server tool whose name an agent's own tool (or
// an earlier server's) already has is renamed with a suffix, and the
// renamed tool still calls the server's tool.
func TestNamesDoNotCollide(t *testing.T) {
	own := agent.MustTool("x_echo", "The agent's own echo.", func(_ context.Context, a struct {
		Text string `json:"text"`
	}) (string, error) {
		return "own " + a.Text, nil
	})
	first, second := stdio(t, "x"), remote(t, "x")
	a, err := agent.New("a", agent.WithMCP(first, second), agent.WithTools(own))
	if err != nil {
		t.Fatal(err)
	}
	names := a.ToolNames()
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Fatalf("duplicate tool %s in %v", n, names)
		}
		seen[n] = true
	}
	for _, want := range []string{"x_echo", "x_echo_2", "x_echo_3", "x_add", "x_add_2"} {
		if !seen[want] {
			t.Fatalf("tools %v lack %s", names, want)
		}
	}
	ctx := context.Background()
	for name, want := range map[string]string{"x_echo": "own hi", "x_echo_2": "echo: hi", "x_echo_3": "echo: hi"} {
		out, err := toolByName(t, a, name).Call(ctx, json.RawMessage(`{"text":"hi"}`))
		if err != nil || out != want {
			t.Errorf("%s: %q %v, want %q", name, out, err, want)
		}
	}
}

func TestToolNamesAreSafe(t *testing.T) {
	srv := remote(t, "my server.v2")
	a, err := agent.New("a", agent.WithMCP(srv))
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	for _, n := range a.ToolNames() {
		if !valid.MatchString(n) || !strings.HasPrefix(n, "my_server_v2_") {
			t.Errorf("tool name %q", n)
		}
	}
}

// TestToolErrors: a tool's own failure, arguments that are no object, a
// call past the call timeout: each is a failed tool call the model reads,
// matched with errors.As/Is, and the server stays usable.
func TestToolErrors(t *testing.T) {
	srv := stdio(t, "s", mcptools.WithCallTimeout(300*time.Millisecond))
	a, err := agent.New("a", agent.WithMCP(srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = toolByName(t, a, "s_fail").Call(ctx, nil)
	var te *mcptools.ToolError
	if !errors.As(err, &te) || te.Tool != "fail" || te.Server != "s" || !strings.Contains(te.Message, "always fails") {
		t.Fatalf("fail: %v", err)
	}
	_, err = toolByName(t, a, "s_echo").Call(ctx, json.RawMessage(`[1]`))
	var ae *agent.ArgumentError
	if !errors.As(err, &ae) {
		t.Fatalf("array arguments: %v", err)
	}
	_, err = toolByName(t, a, "s_slow").Call(ctx, nil)
	if !errors.Is(err, mcptools.ErrCallTimeout) {
		t.Fatalf("slow: %v", err)
	}
	if out, err := toolByName(t, a, "s_echo").Call(ctx, json.RawMessage(`{"text":"still here"}`)); err != nil || out != "echo: still here" {
		t.Fatalf("after the errors: %q %v", out, err)
	}
	if srv.Starts() != 1 {
		t.Fatalf("starts %d, want 1", srv.Starts())
	}
}

// TestServerThatExitsIsRestarted: a local server that dies during a call
// fails that call with ErrServerExited (saying what it wrote on stderr);
// the next call starts it again and succeeds.
func TestServerThatExitsIsRestarted(t *testing.T) {
	srv := stdio(t, "s")
	a, err := agent.New("a", agent.WithMCP(srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, outs := ask(t, ctx, a, "use s_crash")
	if res.Status != agent.StatusCompleted || len(outs) != 1 || !errors.Is(outs[0].Err, mcptools.ErrServerExited) ||
		!strings.Contains(outs[0].Err.Error(), "crashing as asked") {
		t.Fatalf("crash: %+v %+v", res, outs)
	}
	if !strings.Contains(res.Text, "s_crash tool failed") {
		t.Fatalf("the model was not told: %q", res.Text)
	}
	res, outs = ask(t, ctx, a, `use s_echo {"text": "again"}`)
	if len(outs) != 1 || outs[0].Output != "echo: again" {
		t.Fatalf("after the crash: %+v %+v", res, outs)
	}
	if srv.Starts() != 2 {
		t.Fatalf("starts %d, want 2", srv.Starts())
	}
}

// TestCancelledRunDoesNotWait: a run cancelled while an MCP tool is
// running ends aborted, the call failing with the run's cancellation,
// without waiting for the tool; the server is told to cancel the call.
func TestCancelledRunDoesNotWait(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remote bool
	}{{"stdio", false}, {"http", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := stdio(t, "s")
			var calls *mcptest.Counter
			if tc.remote {
				var url string
				url, calls = mcptest.NewHTTP(t, "")
				srv = mcptools.Remote("s", url, mcptools.WithLogger(quiet))
				t.Cleanup(func() { srv.Close() })
			}
			a, err := agent.New("a", agent.WithMCP(srv))
			if err != nil {
				t.Fatal(err)
			}
			marker := filepath.Join(t.TempDir(), "started")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type ended struct {
				res *agent.Result
				out *agent.ToolOutcome
			}
			done := make(chan ended, 1)
			go func() {
				var conv agent.Conversation
				var e ended
				prompt := fmt.Sprintf(`use s_slow {"marker": %q}`, marker)
				for ev := range a.Run(ctx, &conv, []llm.Message{llm.UserText(prompt)}) {
					switch ev.Type {
					case agent.EventToolResult:
						e.out = ev.ToolResult
					case agent.EventResult:
						e.res = ev.Result
					}
				}
				done <- e
			}()
			testutil.Eventually(t, 20*time.Second, "the tool to start", func() bool { _, err := os.Stat(marker); return err == nil })
			cancel()
			e := <-done
			if e.res.Status != agent.StatusAborted || e.out == nil || !errors.Is(e.out.Err, context.Canceled) {
				t.Fatalf("result %+v, tool %+v", e.res, e.out)
			}
			if calls != nil {
				testutil.Eventually(t, 20*time.Second, "the server to see the cancellation", func() bool { return calls.Cancelled() == 1 })
			}
		})
	}
}

// alive reports whether pid is a process that has not exited (a zombie
// has).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestCloseStopsTheProcessGroup: Close stops a local server and the
// processes it started, leaving none behind.
func TestCloseStopsTheProcessGroup(t *testing.T) {
	srv := stdio(t, "s")
	a, err := agent.New("a", agent.WithMCP(srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pids := map[string]int{}
	for _, name := range []string{"s_pid", "s_spawn"} {
		out, err := toolByName(t, a, name).Call(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(out)
		if err != nil || !alive(pid) {
			t.Fatalf("%s: %q %v", name, out, err)
		}
		pids[name] = pid
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// The processes are gone once the kernel has delivered SIGKILL.
	for name, pid := range pids {
		testutil.Eventually(t, 20*time.Second, name+"'s process to end after Close", func() bool { return !alive(pid) })
	}
	if _, err := toolByName(t, a, "s_echo").Call(ctx, nil); !errors.Is(err, mcptools.ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}

// TestEnvironment: a local server gets the variables it is given and the
// few inherited ones, not the host's secrets.
func TestEnvironment(t *testing.T) {
	t.Setenv("AGENTHOST_TEST_SECRET_KEY", "sk-do-not-leak")
	srv := stdio(t, "s", mcptools.WithEnv(map[string]string{"GIVEN": "yes"}))
	a, err := agent.New("a", agent.WithMCP(srv))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"AGENTHOST_TEST_SECRET_KEY": "unset", "GIVEN": "set:yes", "PATH": "set:" + os.Getenv("PATH")} {
		out, err := toolByName(t, a, "s_env").Call(context.Background(), json.RawMessage(`{"name":"`+name+`"}`))
		if err != nil || out != want {
			t.Errorf("%s: %q %v, want %q", name, out, err, want)
		}
	}
}

func TestMaxOutput(t *testing.T) {
	srv := remote(t, "s", mcptools.WithMaxOutput(100))
	a, err := agent.New("a", agent.WithMCP(srv))
	if err != nil {
		t.Fatal(err)
	}
	out, err := toolByName(t, a, "s_big").Call(context.Background(), json.RawMessage(`{"n":1000}`))
	if err != nil || !strings.HasPrefix(out, strings.Repeat("x", 100)+"\n") || !strings.HasSuffix(out, "[output cut: 900 more bytes]") {
		t.Fatalf("big: %q %v", out, err)
	}
}

// TestUnavailable: a server that cannot be started or reached fails the
// building of the agent with ErrUnavailable, naming the server, within
// the start timeout.
func TestUnavailable(t *testing.T) {
	url, _ := mcptest.NewHTTP(t, "Authorization: Bearer right")
	for _, tc := range []struct {
		name string
		srv  *mcptools.Server
		want error
	}{
		{"no such program", mcptools.Command("gone", []string{"/nonexistent/mcp-server"}), mcptools.ErrUnavailable},
		{"exits at once", mcptools.Command("gone", []string{"false"}), mcptools.ErrUnavailable},
		{"not MCP", mcptools.Command("gone", []string{"cat"}, mcptools.WithStartTimeout(300*time.Millisecond)), mcptools.ErrUnavailable},
		{"nothing listening", mcptools.Remote("gone", "http://127.0.0.1:1/mcp"), mcptools.ErrUnavailable},
		{"refused without the header", mcptools.Remote("gone", url), mcptools.ErrUnavailable},
		{"empty command", mcptools.Command("gone", nil), nil},
		{"bad url", mcptools.Remote("gone", "ftp://x"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.srv.Close()
			_, err := agent.New("a", agent.WithMCP(tc.srv))
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), "gone") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	srv := mcptools.Remote("auth", url, mcptools.WithHeaders(map[string]string{"Authorization": "Bearer right"}))
	defer srv.Close()
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("with the header: %v", err)
	}
}

// TestOpen: the OpenCode-shaped Config opens both kinds of server, with
// {env:NAME} taken from the lookup, and refuses what it cannot run.
func TestOpen(t *testing.T) {
	url, _ := mcptest.NewHTTP(t, "Authorization: Bearer s3cret")
	cmd, env := mcptest.Command()
	env["TOKEN_SEEN"] = "{env:TOKEN}"
	lookup := func(k string) (string, bool) {
		if k == "TOKEN" {
			return "s3cret", true
		}
		return "", false
	}
	local, err := mcptools.Open("l", mcptools.Config{Type: "local", Command: cmd, Environment: env}, lookup, mcptools.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	rem, err := mcptools.Open("r", mcptools.Config{Type: "remote", URL: url, Headers: map[string]string{"Authorization": "Bearer {env:TOKEN}"}, Timeout: 5000}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	defer rem.Close()
	a, err := agent.New("a", agent.WithMCP(local, rem))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := toolByName(t, a, "l_env").Call(context.Background(), json.RawMessage(`{"name":"TOKEN_SEEN"}`)); err != nil || out != "set:s3cret" {
		t.Fatalf("env: %q %v", out, err)
	}
	if out, err := toolByName(t, a, "r_echo").Call(context.Background(), json.RawMessage(`{"text":"r"}`)); err != nil || out != "echo: r" {
		t.Fatalf("remote: %q %v", out, err)
	}

	off := false
	for _, tc := range []struct {
		name string
		c    mcptools.Config
		want string
	}{
		{"no type", mcptools.Config{Command: []string{"x"}}, "type is missing"},
		{"bad type", mcptools.Config{Type: "stdio", Command: []string{"x"}}, `type "stdio"`},
		{"local without command", mcptools.Config{Type: "local"}, "needs a command"},
		{"local with url", mcptools.Config{Type: "local", Command: []string{"x"}, URL: "http://x"}, `for type "remote"`},
		{"remote without url", mcptools.Config{Type: "remote"}, "needs a url"},
		{"remote with command", mcptools.Config{Type: "remote", URL: "http://x", Command: []string{"x"}}, `for type "local"`},
		{"unset variable", mcptools.Config{Type: "remote", URL: "http://x", Headers: map[string]string{"A": "{env:NOPE}"}}, "NOPE is not set"},
		{"bad variable", mcptools.Config{Type: "local", Command: []string{"x"}, Environment: map[string]string{"A": "{env:1-x}"}}, "not a variable name"},
		{"negative timeout", mcptools.Config{Type: "local", Command: []string{"x"}, Timeout: -1}, "timeout"},
		{"disabled but broken", mcptools.Config{Type: "local", Enabled: &off}, "needs a command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mcptools.Open("s", tc.c, lookup)
			if !errors.Is(err, mcptools.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if (mcptools.Config{Enabled: &off}).On() || !(mcptools.Config{}).On() {
		t.Fatal("On")
	}
}

// TestRelativeCommand: a command given as a relative path is found from
// the server's working directory, not this process's.
func TestRelativeCommand(t *testing.T) {
	dir := t.TempDir()
	cmd, env := mcptest.Command()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(cmd[0], filepath.Join(dir, "bin", "server")); err != nil {
		t.Fatal(err)
	}
	srv := mcptools.Command("rel", []string{"./bin/server"}, mcptools.WithDir(dir), mcptools.WithEnv(env), mcptools.WithLogger(quiet))
	defer srv.Close()
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}
