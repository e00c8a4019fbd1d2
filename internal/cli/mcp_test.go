package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/demo"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/relay/relayserver"
	"github.com/agenthost/agenthost/trust"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// mcpHost starts a real host of the demo agent (offline model) on
// 127.0.0.1 and returns it with its URL.
func mcpHost(t *testing.T, opts ...host.Option) (*host.Server, string) {
	t.Helper()
	dir := t.TempDir()
	base := []host.Option{host.WithDir(dir), host.WithConfigFile(""), host.WithLogger(quietLog),
		host.WithSummary("Translates and adds numbers."), host.WithName("translator")}
	s, err := host.New(context.Background(), func() (*agent.Agent, error) {
		a, err := demo.New("translator", "offline/demo", "")
		if err != nil {
			return nil, err
		}
		return a.Derive(agent.WithTools(colorTool))
	}, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		ts.Close()
	})
	return s, ts.URL
}

type colorArgs struct {
	Why string `json:"why,omitempty"`
}

// colorTool asks the person at the other end a question.
var colorTool = agent.MustTool("color", "Ask the user their favourite colour.", func(ctx context.Context, _ colorArgs) (string, error) {
	ans, err := agent.AskUser(ctx, agent.Question{Question: "Which colour?", Options: []agent.AnswerOption{{Label: "red"}, {Label: "blue"}}})
	if err != nil {
		return "", err
	}
	return "the user chose " + strings.Join(ans[0], ","), nil
})

// mcpSession runs `agenthost mcp args...` in-process on pipes and connects
// the MCP Go SDK's client to it. Closing the session ends the command,
// whose exit code the returned function gives.
func mcpSession(t *testing.T, ctx context.Context, opts *mcp.ClientOptions, args ...string) (*mcp.ClientSession, func() int, *testutil.Buffer) {
	return mcpSessionOn(t, ctx, "", opts, args...)
}

// mcpSessionOn is mcpSession with the client's protocol version ("" for
// the SDK's latest).
func mcpSessionOn(t *testing.T, ctx context.Context, protocol string, opts *mcp.ClientOptions, args ...string) (*mcp.ClientSession, func() int, *testutil.Buffer) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var errb testutil.Buffer
	env := &Env{Stdin: inR, Stdout: outW, Stderr: &errb, Getenv: func(string) string { return "" }, Dir: t.TempDir()}
	done := make(chan int, 1)
	go func() {
		code := Run(ctx, env, append([]string{"mcp"}, args...))
		outW.Close()
		inR.Close()
		done <- code
	}()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "go-test", Version: "1"}, opts).
		Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, &mcp.ClientSessionOptions{ProtocolVersion: protocol})
	if err != nil {
		inW.Close()
		t.Fatalf("connect: %v (the command said: %s)", err, errb.String())
	}
	wait := func() int { cs.Close(); return <-done }
	return cs, wait, &errb
}

// resultText joins a tool result's text content.
func resultText(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// newKeys makes a caller identity in a fresh directory.
func newKeys(t *testing.T) (string, *trust.Identity) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	id, _, err := trust.LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, id
}

// TestMCPAsk: the MCP Go SDK's client lists the ask tool of `agenthost mcp
// URL`, asks twice in one session (session_id continues it), gets progress
// notifications while the agent works, and is signed with the local key: a
// strict agent that whitelists that key answers, and refuses an unsigned
// or unknown caller as a tool error.
func TestMCPAsk(t *testing.T) {
	keys, id := newKeys(t)
	_, url := mcpHost(t, host.WithTrust("strict"), host.WithWhitelist(id.Address()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The client handles notifications on goroutines of their own: one
	// may still be on its way when the result is in.
	var progress testutil.Buffer
	cs, wait, errb := mcpSession(t, ctx, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			progress.Write([]byte(r.Params.Message + " | "))
		},
	}, url, "--keys", keys)

	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 1 {
		t.Fatalf("tools: %v %v", tools, err)
	}
	tool := tools.Tools[0]
	schema, _ := json.Marshal(tool.InputSchema)
	if tool.Name != "ask" || !strings.Contains(tool.Description, `"translator"`) || !strings.Contains(tool.Description, "Translates and adds numbers.") ||
		!strings.Contains(string(schema), `"session_id"`) || !strings.Contains(string(schema), `"required":["prompt"]`) {
		t.Fatalf("tool: %+v %s", tool, schema)
	}

	params := &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{"prompt": "My name is Ada Lovelace"}}
	params.SetProgressToken("p1")
	r1, err := cs.CallTool(ctx, params)
	if err != nil || r1.IsError {
		t.Fatalf("first ask: %v %v (stderr %s)", resultText(r1), err, errb)
	}
	var out struct {
		Answer    string `json:"answer"`
		SessionID string `json:"session_id"`
	}
	raw, _ := json.Marshal(r1.StructuredContent)
	if err := json.Unmarshal(raw, &out); err != nil || out.SessionID == "" || !strings.Contains(out.Answer, "Ada Lovelace") ||
		!strings.Contains(resultText(r1), "session_id: "+out.SessionID) {
		t.Fatalf("first answer: %s / %q", raw, resultText(r1))
	}
	for _, want := range []string{"thinking", "Ada Lovelace"} {
		if err := progress.WaitFor(ctx, want); err != nil {
			t.Fatalf("progress: %v: %q", err, progress.String())
		}
	}

	r2, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{"prompt": "Who am I?", "session_id": out.SessionID}})
	if err != nil || r2.IsError || !strings.Contains(resultText(r2), "You are Ada Lovelace") {
		t.Fatalf("second ask in the session: %q %v", resultText(r2), err)
	}
	r3, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{"prompt": "Who am I?"}})
	if err != nil || r3.IsError || strings.Contains(resultText(r3), "Ada") {
		t.Fatalf("a new session remembers: %q %v", resultText(r3), err)
	}
	if code := wait(); code != 0 {
		t.Fatalf("agenthost mcp exited %d: %s", code, errb)
	}

	// The same agent refuses callers it does not know.
	for _, args := range [][]string{{url, "--unsigned"}, {url, "--keys", filepath.Join(t.TempDir(), "stranger")}} {
		cs, wait, _ := mcpSession(t, ctx, nil, args...)
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{"prompt": "hi"}})
		if err != nil || !r.IsError {
			t.Fatalf("%v: want a tool error, got %q %v", args, resultText(r), err)
		}
		wait()
	}
}

// TestMCPElicitation: a tool that needs approval at the agent is put to
// the MCP client's user through elicitation (protocol 2025-11-25, which
// the TypeScript SDK and desktop clients speak), and runs only if allowed;
// a client without elicitation, or on protocol 2026-07-28 (where servers
// may not send requests during a call), gets the tool refused. The agent's
// questions (ask_user) go the same way, unanswered without elicitation.
func TestMCPElicitation(t *testing.T) {
	keys, _ := newKeys(t)
	_, url := mcpHost(t, host.WithApproval("reverse"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name     string
		protocol string
		allow    *bool
		prompt   string
		want     string
	}{
		{"allowed", "2025-11-25", ptrTo(true), `use reverse on "abc"`, "cba"},
		{"refused", "2025-11-25", ptrTo(false), `use reverse on "abc"`, "the user said no"},
		{"no elicitation", "2025-11-25", nil, `use reverse on "abc"`, "cannot ask its user"},
		{"protocol 2026-07-28", "2026-07-28", ptrTo(true), `use reverse on "abc"`, "cannot ask its user"},
		{"question", "2025-11-25", ptrTo(true), "use color", "the user chose blue"},
		{"question without elicitation", "2025-11-25", nil, "use color", "the user chose \n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts *mcp.ClientOptions
			var asked string
			if tc.allow != nil {
				opts = &mcp.ClientOptions{ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
					asked = r.Params.Message
					if strings.Contains(asked, "Which colour?") {
						return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"answer": "blue"}}, nil
					}
					return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"allow": *tc.allow}}, nil
				}}
			}
			cs, wait, _ := mcpSessionOn(t, ctx, tc.protocol, opts, url, "--keys", keys)
			defer wait()
			r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{"prompt": tc.prompt}})
			if err != nil || r.IsError || !strings.Contains(resultText(r), tc.want) {
				t.Fatalf("answer %q %v, want %q", resultText(r), err, tc.want)
			}
			if tc.want == "cba" && !strings.Contains(asked, "reverse") {
				t.Fatalf("elicitation message %q", asked)
			}
		})
	}
}

// TestMCPThroughRelay: `agenthost mcp 0x… --relay URL` reaches an agent
// that has no listener at all, through a real relay, and reports the
// agent's tool calls as progress.
func TestMCPThroughRelay(t *testing.T) {
	r, err := relayserver.New(relayserver.Config{Addr: "127.0.0.1:0", Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown(context.Background())
	dir := t.TempDir()
	s, err := host.New(context.Background(), func() (*agent.Agent, error) { return demo.New("calculator", "offline/demo", "") },
		host.WithDir(dir), host.WithConfigFile(""), host.WithLogger(quietLog), host.WithRelayURL(r.URL()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the agent's announce on the relay", func() bool {
		st, _, _ := s.RelayStatus()
		return st.Announced
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keys, _ := newKeys(t)
	// The client handles notifications on goroutines of their own: one
	// may still be on its way when the result is in.
	var progress testutil.Buffer
	cs, wait, errb := mcpSession(t, ctx, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			progress.Write([]byte(r.Params.Message + " | "))
		},
	}, s.Address(), "--relay", r.URL(), "--keys", keys)
	params := &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{"prompt": "use add on 2 and 3"}}
	params.SetProgressToken(7)
	res, err := cs.CallTool(ctx, params)
	if err != nil || res.IsError || !strings.Contains(resultText(res), "5") {
		t.Fatalf("through the relay: %q %v (stderr %s)", resultText(res), err, errb)
	}
	for _, want := range []string{"running the tool add", "the tool add completed"} {
		if err := progress.WaitFor(ctx, want); err != nil {
			t.Fatalf("progress: %v: %q", err, progress.String())
		}
	}
	if code := wait(); code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
}

// TestMCPStartErrors: a target that cannot be reached fails at start, where
// the MCP client shows the command's stderr.
func TestMCPStartErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{nil, 2, "want one URL or ADDRESS"},
		{[]string{"http://127.0.0.1:1", "--unsigned"}, 1, "offline"},
		{[]string{"0x" + strings.Repeat("ab", 32), "--unsigned"}, 1, "--relay"},
	} {
		code, _, errb := hostCmd(ctx, t.TempDir(), "", append([]string{"mcp"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errb.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, errb)
		}
	}
}

// TestMCPTypeScriptClient: the MCP TypeScript SDK's client (npm
// @modelcontextprotocol/sdk) starts `agenthost mcp URL` as its stdio
// server, lists the ask tool, and asks twice in one session with progress
// notifications, against a real host.
func TestMCPTypeScriptClient(t *testing.T) {
	js := testutil.MCPJS.Dir(t)
	keys, _ := newKeys(t)
	_, url := mcpHost(t)
	script, err := filepath.Abs("testdata/mcpjs/ask.cjs")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// This test binary runs as agenthost (TestMain), started by node.
	cmd := exec.CommandContext(ctx, "node", script, os.Args[0], "mcp", url, "--keys", keys)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), testutil.NodePath(js), envTestMain+"=1", "GORACE=atexit_sleep_ms=0")
	var got struct {
		Tools                []testutil.MCPTool `json:"tools"`
		First, Second, Empty testutil.MCPCallResult
		Progress             []testutil.MCPProgress `json:"progress"`
	}
	testutil.RunJSON(t, cmd, &got)
	if len(got.Tools) != 1 || got.Tools[0].Name != "ask" || !strings.Contains(got.Tools[0].Description, "translator") {
		t.Fatalf("tools: %+v", got.Tools)
	}
	if got.First.IsError || !strings.Contains(got.First.StructuredContent["answer"], "Ada Lovelace") || got.First.StructuredContent["session_id"] == "" {
		t.Fatalf("first: %+v", got.First)
	}
	if got.Second.IsError || !strings.Contains(got.Second.Content[0].Text, "You are Ada Lovelace") ||
		got.Second.StructuredContent["session_id"] != got.First.StructuredContent["session_id"] {
		t.Fatalf("second: %+v", got.Second)
	}
	if !got.Empty.IsError || !strings.Contains(got.Empty.Content[0].Text, "prompt is empty") {
		t.Fatalf("empty prompt: %+v", got.Empty)
	}
	if len(got.Progress) == 0 {
		t.Fatal("no progress notifications")
	}
	for i := 1; i < len(got.Progress); i++ {
		if got.Progress[i].Progress <= got.Progress[i-1].Progress {
			t.Fatalf("progress does not increase: %+v", got.Progress)
		}
	}
}
