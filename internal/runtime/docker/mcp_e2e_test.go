package docker

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

// mcpServerPy is a stdio MCP server in Python's standard library (the
// runtime image carries python3, not the test's Go server): newline-
// delimited JSON-RPC, one tool "whereami" that answers its word, its uid
// and whether it sees the Docker container's marker file.
const mcpServerPy = `
import json, os, sys
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    m = json.loads(line)
    if "id" not in m:
        continue
    meth, p = m.get("method"), m.get("params") or {}
    if meth == "initialize":
        r = {"protocolVersion": p.get("protocolVersion", "2025-06-18"), "capabilities": {"tools": {}},
             "serverInfo": {"name": "py", "version": "1"}}
    elif meth == "tools/list":
        r = {"tools": [{"name": "whereami", "description": "Says where this server runs.",
                        "inputSchema": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}]}
    elif meth == "tools/call":
        word = (p.get("arguments") or {}).get("word", "")
        r = {"content": [{"type": "text", "text": "word=%s uid=%d python=%s" % (word, os.getuid(), sys.version.split()[0])}]}
    elif meth == "ping":
        r = {}
    else:
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32601, "message": "no such method"}}) + "\n")
        sys.stdout.flush()
        continue
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}) + "\n")
    sys.stdout.flush()
`

// TestPlatformMCPServersDocker: a platform agent created with mcpServers
// (a local stdio server, OpenCode's shape) under the Docker driver starts
// that server inside its container, from what the runtime image carries
// (python3), and the agent (offline/demo) calls the server's tool: the
// call completes and its output is the server's answer to the word the
// agent sent.
func TestPlatformMCPServersDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the static agenthost and its image")
	}
	if os.Getenv(e2eEnv) == "0" {
		t.Skipf("%s=0: the real runtime in containers is off", e2eEnv)
	}
	c := engine(t)
	buildRuntimeImage(t, c)
	dir := t.TempDir()
	d := newDriver(t, c, dir, func(o *Options) { o.Image = e2eImage })
	env := platformtest.Start(t, platformtest.Options{
		Driver: d, DataDir: dir,
		Agents: agents.Config{
			Command: []string{"agenthost", "serve", "--role", "coding"},
			Ports:   agents.PortRange{Min: 38000, Max: 38999}, ProvisionTimeout: 60 * time.Second,
		},
	})
	t.Cleanup(func() {
		hs, _ := d.List(context.Background())
		for _, h := range hs {
			d.Destroy(context.Background(), h)
		}
	})
	api := env.Client(env.Token(t, "acme"))
	created := api.Do(t, "POST", "/api/v1/agents", map[string]any{
		"name": "mcp-in-docker", "model": "offline/demo",
		"mcpServers": map[string]any{"py": map[string]any{"type": "local", "command": []string{"python3", "-c", mcpServerPy}}},
	}).Want(t, 200)
	id := created["agentId"].(string)
	waitIdle(t, api, id)

	word := "mcp-docker-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	sent := api.Do(t, "POST", "/api/v1/agents/"+id+"/messages", map[string]any{"message": `use py_whereami {"word": "` + word + `"}`}).Want(t, 200)
	sid := sent["sessionId"].(string)
	// The call may ask first, as any tool call may: approve it once.
	deadline := time.Now().Add(90 * time.Second)
	for {
		perms, _ := api.Do(t, "GET", "/api/v1/agents/"+id+"/permissions", nil).Want(t, 200)["permissions"].([]any)
		for _, p := range perms {
			pm, _ := p.(map[string]any)
			api.Do(t, "POST", "/api/v1/agents/"+id+"/permissions/"+pm["id"].(string)+"/reply", map[string]any{"reply": "once"}).Want(t, 200)
		}
		if st := api.Do(t, "GET", "/api/v1/agents/"+id, nil).Want(t, 200); st["busy"] == false && len(perms) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not finish its turn")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := toolOutput(history(t, api, id, sid))
	if !strings.Contains(out, "word="+word) || !strings.Contains(out, "python=3.") {
		t.Fatalf("the MCP tool's output: want the server's answer to %q, got %q", word, out)
	}
}
