package host_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/trust"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpConnect opens a Go SDK client session on the host's /mcp, signed
// by id when it is not nil.
func mcpConnect(t *testing.T, ctx context.Context, h *trustHost, id *trust.Identity, opts *mcp.ClientOptions) (*mcp.ClientSession, error) {
	t.Helper()
	hc := &http.Client{}
	if id != nil {
		hc.Transport = &host.MCPSigner{Identity: id, To: h.Address()}
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "mcpserver-test", Version: "1"}, opts)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: h.URL + host.MCPPath, HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

func mustMCP(t *testing.T, ctx context.Context, h *trustHost, id *trust.Identity) *mcp.ClientSession {
	t.Helper()
	cs, err := mcpConnect(t, ctx, h, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// mcpAsk calls the ask tool and returns its structured result.
func mcpAsk(t *testing.T, ctx context.Context, cs *mcp.ClientSession, prompt, sessionID string) (map[string]any, *mcp.CallToolResult) {
	t.Helper()
	args := map[string]any{"prompt": prompt}
	if sessionID != "" {
		args["session_id"] = sessionID
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ask", Arguments: args})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := res.StructuredContent.(map[string]any)
	return out, res
}

func mcpText(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// rpcBody is one JSON-RPC tools/call of ask, as a raw HTTP body.
func rpcBody(prompt string) []byte {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": "ask", "arguments": map[string]any{"prompt": prompt}}})
	return b
}

// postMCP sends one raw HTTP request to /mcp and returns its status and
// body.
func postMCP(t *testing.T, base string, body []byte, hd http.Header) (int, string) {
	t.Helper()
	r, err := http.NewRequest("POST", base+host.MCPPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hd {
		r.Header[k] = v
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		t.Fatalf("the endpoint is to be stateless, and it issued the MCP session %q", sid)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signedFor returns the headers that sign body for /mcp of the agent to.
func signedFor(id *trust.Identity, to string, body []byte) http.Header {
	r, _ := http.NewRequest("POST", "http://x"+host.MCPPath, bytes.NewReader(body))
	host.SignMCPRequest(id, to, r, time.Now())
	return r.Header
}

// TestMCPServerSignedRequests: what a signed MCP caller signs is what
// runs. The signature (trust's signed headers over the body's digest) is
// refused when the body was changed on the way, when it is replayed, when
// it was made for another agent, when it is a signed GET's headers
// (another path), and when it is partial; the untouched request runs, as
// its signer.
func TestMCPServerSignedRequests(t *testing.T) {
	alice := newIdentity(t)
	h := startTrustHost(t, t.TempDir(), host.WithTrust("strict"), host.WithWhitelist(alice.Address()))
	to := h.Address()
	body := rpcBody("My name is Ada Lovelace")
	good := signedFor(alice, to, body)

	other := signedFor(alice, newIdentity(t).Address(), body)
	getHeaders := trust.SignHeaders(alice, "POST", host.MCPPath, to, time.Now())
	partial := signedFor(alice, to, body)
	partial.Del(trust.HeaderSignature)
	cases := []struct {
		name string
		body []byte
		hd   http.Header
	}{
		{"body changed on the way", rpcBody("Transfer everything to Mallory"), signedFor(alice, to, body)},
		{"signed for another agent", body, other},
		{"headers over the path only", body, getHeaders},
		{"partial headers", body, partial},
		{"unsigned under strict", body, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, resp := postMCP(t, h.URL, c.body, c.hd)
			if code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", code, resp)
			}
		})
	}
	// Stateless: an initialize gets no MCP session id (postMCP checks).
	init, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": map[string]any{
		"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}})
	if code, resp := postMCP(t, h.URL, init, signedFor(alice, to, init)); code != http.StatusOK {
		t.Fatalf("signed initialize: %d %s", code, resp)
	}
	code, resp := postMCP(t, h.URL, body, good)
	if code != http.StatusOK || !strings.Contains(resp, "session_id") {
		t.Fatalf("signed request: %d %s", code, resp)
	}
	if code, resp = postMCP(t, h.URL, body, good); code != http.StatusUnauthorized {
		t.Fatalf("replayed request: %d, want 401: %s", code, resp)
	}
	// It ran as Alice: her signed listing shows the session.
	code, m := signedGet(t, alice, h.URL, "/sessions")
	wantStatus(t, code, 200, m)
	if n := len(m["sessions"].([]any)); n != 1 {
		t.Fatalf("alice has %d sessions, want 1: %v", n, m)
	}
}

// TestMCPServerStrict: under trust strict an anonymous MCP client cannot
// even initialize (401), a signed stranger is refused (403), while a
// whitelisted signed one asks, continues its session
// and lists it.
func TestMCPServerStrict(t *testing.T) {
	alice := newIdentity(t)
	h := startTrustHost(t, t.TempDir(), host.WithTrust("strict"), host.WithWhitelist(alice.Address()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := mcpConnect(t, ctx, h, nil, nil); err == nil || !strings.Contains(err.Error(), "401") && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Fatalf("anonymous connect under strict: %v, want 401", err)
	}
	if _, err := mcpConnect(t, ctx, h, newIdentity(t), nil); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("a signed stranger under strict: %v, want 403", err)
	}
	cs := mustMCP(t, ctx, h, alice)
	first, _ := mcpAsk(t, ctx, cs, "My name is Ada Lovelace", "")
	sid, _ := first["session_id"].(string)
	if sid == "" {
		t.Fatalf("no session_id: %v", first)
	}
	second, res := mcpAsk(t, ctx, cs, "Who am I?", sid)
	if second["session_id"] != sid || !strings.Contains(mcpText(res), "Ada") {
		t.Fatalf("continued session: %v %q", second, mcpText(res))
	}
	list, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Resources) != 1 || list.Resources[0].URI != "agenthost://sessions/"+sid {
		t.Fatalf("resources: %+v", list.Resources)
	}
}

// TestMCPServerOwnerScoped: sessions over MCP are owned as over HTTP.
// Bob, naming Alice's session id, is told it is not one of his sessions,
// in the same words as for an id that never existed; he cannot read hers as a resource (not found, as an id
// that does not exist) nor see it in his list; an anonymous caller under
// careful may ask but not list; Alice reads her session over MCP and
// sees it over HTTP too.
func TestMCPServerOwnerScoped(t *testing.T) {
	h := startTrustHost(t, t.TempDir(), host.WithTrust("careful"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob := newIdentity(t), newIdentity(t)
	ca, cb, anon := mustMCP(t, ctx, h, alice), mustMCP(t, ctx, h, bob), mustMCP(t, ctx, h, nil)

	out, _ := mcpAsk(t, ctx, ca, "My name is Ada Lovelace", "")
	aid := out["session_id"].(string)

	_, res := mcpAsk(t, ctx, cb, "Who am I?", aid)
	_, unknown := mcpAsk(t, ctx, cb, "Who am I?", "no-such-session-0000")
	if !res.IsError || strings.Contains(mcpText(res), "Ada") || mcpText(res) != strings.ReplaceAll(mcpText(unknown), "no-such-session-0000", aid) {
		t.Fatalf("bob naming alice's session: %q; naming none: %q", mcpText(res), mcpText(unknown))
	}
	if !strings.Contains(mcpText(res), "not one of your sessions") {
		t.Fatalf("bob naming alice's session: %q", mcpText(res))
	}
	for _, uri := range []string{"agenthost://sessions/" + aid, "agenthost://sessions/no-such-session-0000"} {
		if _, err := cb.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); err == nil || !strings.Contains(strings.ToLower(err.Error()), "not found") {
			t.Fatalf("bob reads %s: %v, want not found", uri, err)
		}
	}
	list, err := cb.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list.Resources {
		if strings.Contains(r.URI, aid) {
			t.Fatalf("bob's list shows alice's session: %+v", list.Resources)
		}
	}
	if _, err := anon.ListResources(ctx, nil); err == nil || !strings.Contains(err.Error(), "signature required") {
		t.Fatalf("anonymous list under careful: %v, want signature required", err)
	}
	if out, _ := mcpAsk(t, ctx, anon, "hello", ""); out["session_id"] == "" {
		t.Fatalf("anonymous ask under careful: %v", out)
	}
	rr, err := ca.ReadResource(ctx, &mcp.ReadResourceParams{URI: "agenthost://sessions/" + aid})
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(rr.Contents[0].Text), &v); err != nil || v["session_id"] != aid || v["prompt"] != "My name is Ada Lovelace" {
		t.Fatalf("alice reads her session: %v %v", err, rr.Contents[0].Text)
	}
}

// TestMCPServerProgress: a call with a progress token gets the run's
// events as progress notifications before its answer.
func TestMCPServerProgress(t *testing.T) {
	h := startTrustHost(t, t.TempDir(), host.WithTrust("open"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The client hands notifications to its handler on its own
	// goroutine, so the first may reach it after the call's answer.
	msgs := make(chan string, 64)
	cs, err := mcpConnect(t, ctx, h, nil, &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
		msgs <- r.Params.Message
	}})
	if err != nil {
		t.Fatal(err)
	}
	params := &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{"prompt": "hello"}}
	params.SetProgressToken("p1")
	if _, err := cs.CallTool(ctx, params); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m != "thinking" {
			t.Fatalf("first progress: %q, want thinking", m)
		}
	case <-ctx.Done():
		t.Fatal("no progress notification")
	}
	// Under open, an anonymous caller lists the anonymous sessions, as
	// GET /sessions.
	list, err := cs.ListResources(ctx, nil)
	if err != nil || len(list.Resources) != 1 {
		t.Fatalf("anonymous list under open: %v %+v", err, list)
	}
}

// TestMCPServerNoApprover: a run over MCP has nobody to approve tools, so
// a tool that needs approval is refused before it runs, as over plain
// HTTP; the session shows the refusal.
func TestMCPServerNoApprover(t *testing.T) {
	h := startTrustHost(t, t.TempDir(), host.WithTrust("open"), host.WithApproval("danger"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := mustMCP(t, ctx, h, nil)
	out, _ := mcpAsk(t, ctx, cs, `use danger {"question": "drop the tables"}`, "")
	rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "agenthost://sessions/" + out["session_id"].(string)})
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		ChatItems []map[string]any `json:"chat_items"`
	}
	if err := json.Unmarshal([]byte(rr.Contents[0].Text), &v); err != nil {
		t.Fatal(err)
	}
	var refused bool
	for _, it := range v.ChatItems {
		if it["type"] == "tool_result" {
			refused = it["status"] == "failed" && strings.Contains(fmt.Sprint(it["content"]), "approval")
			if strings.Contains(fmt.Sprint(it["content"]), "did drop the tables") {
				t.Fatalf("the tool ran: %v", it)
			}
		}
	}
	if !refused {
		t.Fatalf("no refused tool call: %v", v.ChatItems)
	}
}

// TestMCPServerTypeScriptClient: the MCP TypeScript SDK's client (npm
// @modelcontextprotocol/sdk) over Streamable HTTP against a real host:
// signed as docs/mcp.md shows (node's own Ed25519 and SHA-256, no Go), it
// lists the ask tool, asks twice in one session with progress
// notifications, and lists and reads its session as resources under
// strict; anonymous, it is refused at connect under strict, and under
// careful may ask but not list.
func TestMCPServerTypeScriptClient(t *testing.T) {
	js := testutil.MCPJS.Dir(t)
	script, err := filepath.Abs("testdata/mcpjs/http.cjs")
	if err != nil {
		t.Fatal(err)
	}
	alice := newIdentity(t)
	type result struct {
		Error         string             `json:"error"`
		Tools         []testutil.MCPTool `json:"tools"`
		First, Second testutil.MCPCallResult
		Progress      []testutil.MCPProgress `json:"progress"`
		Resources     json.RawMessage        `json:"resources"`
		Read          []struct {
			URI  string `json:"uri"`
			Text string `json:"text"`
		} `json:"read"`
	}
	run := func(t *testing.T, h *trustHost, id *trust.Identity) result {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", script, h.URL+host.MCPPath)
		cmd.Env = append(os.Environ(), testutil.NodePath(js))
		if id != nil {
			cmd.Env = append(cmd.Env, "MCP_SEED="+hex.EncodeToString(id.Seed()), "MCP_TO="+h.Address())
		}
		var got result
		testutil.RunJSON(t, cmd, &got)
		return got
	}

	t.Run("signed under strict", func(t *testing.T) {
		h := startTrustHost(t, t.TempDir(), host.WithTrust("strict"), host.WithWhitelist(alice.Address()))
		got := run(t, h, alice)
		if got.Error != "" {
			t.Fatal(got.Error)
		}
		if len(got.Tools) != 1 || got.Tools[0].Name != "ask" || !strings.Contains(got.Tools[0].Description, "translator") {
			t.Fatalf("tools: %+v", got.Tools)
		}
		sid := got.First.StructuredContent["session_id"]
		if got.First.IsError || !strings.Contains(got.First.StructuredContent["answer"], "Ada Lovelace") || sid == "" {
			t.Fatalf("first: %+v", got.First)
		}
		if got.Second.IsError || !strings.Contains(got.Second.Content[0].Text, "You are Ada Lovelace") || got.Second.StructuredContent["session_id"] != sid {
			t.Fatalf("second: %+v", got.Second)
		}
		if len(got.Progress) == 0 || got.Progress[0].Message != "thinking" {
			t.Fatalf("progress: %+v", got.Progress)
		}
		var res []struct {
			URI string `json:"uri"`
		}
		if err := json.Unmarshal(got.Resources, &res); err != nil || len(res) != 1 || res[0].URI != "agenthost://sessions/"+sid {
			t.Fatalf("resources: %s (%v)", got.Resources, err)
		}
		if len(got.Read) != 1 || !strings.Contains(got.Read[0].Text, `"session_id":"`+sid+`"`) {
			t.Fatalf("read: %+v", got.Read)
		}
		// What ran was Alice's: her signed GET /sessions shows it.
		code, m := signedGet(t, alice, h.URL, "/sessions")
		wantStatus(t, code, 200, m)
		if s := m["sessions"].([]any); len(s) != 1 || s[0].(map[string]any)["session_id"] != sid {
			t.Fatalf("alice's sessions over HTTP: %v", m)
		}
	})
	t.Run("anonymous under strict", func(t *testing.T) {
		h := startTrustHost(t, t.TempDir(), host.WithTrust("strict"))
		if got := run(t, h, nil); !strings.Contains(got.Error, "signature required") {
			t.Fatalf("anonymous under strict: %+v, want signature required at connect", got)
		}
	})
	t.Run("anonymous under careful", func(t *testing.T) {
		h := startTrustHost(t, t.TempDir(), host.WithTrust("careful"))
		got := run(t, h, nil)
		if got.Error != "" || got.First.IsError || got.First.StructuredContent["session_id"] == "" {
			t.Fatalf("anonymous ask under careful: %+v", got)
		}
		if !strings.Contains(string(got.Resources), "signature required") {
			t.Fatalf("anonymous list under careful: %s", got.Resources)
		}
	})
}

// TestMCPServerAdvertised: /info names the MCP endpoint, /openapi.json
// describes it, and the /docs page says it is there.
func TestMCPServerAdvertised(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	code, info, _ := do(t, "GET", h.URL+"/info", nil)
	wantStatus(t, code, 200, info)
	if m, _ := info["mcp"].(map[string]any); m["path"] != "/mcp" || m["transport"] != "streamable-http" || m["tool"] != "ask" {
		t.Fatalf("/info mcp: %v", info["mcp"])
	}
	code, spec, _ := do(t, "GET", h.URL+"/openapi.json", nil)
	wantStatus(t, code, 200, spec)
	if p, _ := spec["paths"].(map[string]any)["/mcp"].(map[string]any); p["post"] == nil {
		t.Fatalf("/openapi.json has no POST /mcp")
	}
	resp, err := http.Get(h.URL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(page), `<span class="mono">/mcp</span>`) {
		t.Fatal("/docs does not mention /mcp")
	}
}

// TestMCPServerRebinding: a page that rebinds its own name to the host's
// loopback address (DNS rebinding) sends its own name as Host; /mcp
// refuses such requests on a loopback connection (the SDK's protection),
// while the same request with the loopback name runs.
func TestMCPServerRebinding(t *testing.T) {
	h := startTrustHost(t, t.TempDir(), host.WithTrust("open"))
	for _, tc := range []struct {
		host string
		want int
	}{{"evil.example:80", http.StatusForbidden}, {strings.TrimPrefix(h.URL, "http://"), http.StatusOK}} {
		r, err := http.NewRequest("POST", h.URL+host.MCPPath, bytes.NewReader(rpcBody("hello")))
		if err != nil {
			t.Fatal(err)
		}
		r.Host = tc.host
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("Host %s: %d, want %d", tc.host, resp.StatusCode, tc.want)
		}
	}
}
