package docker

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

// e2eEnv=0 turns TestSeedFlowDocker off (it builds a static agenthost,
// minutes on a cold cache); it runs wherever the other Docker tests do.
const e2eEnv = "AGENTHOST_TEST_DOCKER_E2E"

// e2eImage is the real runtime image the seed flow runs.
const e2eImage = "agenthost-runtime-e2e:latest"

// runtimeImageBuilt makes buildRuntimeImage build once per test binary.
var runtimeImageBuilt struct {
	sync.Mutex
	done bool
}

// buildRuntimeImage builds e2eImage as `agenthost image build` does: a
// static agenthost from this module on the Debian base, once per test
// binary.
func buildRuntimeImage(t *testing.T, c *client.Client) {
	t.Helper()
	runtimeImageBuilt.Lock()
	defer runtimeImageBuilt.Unlock()
	if runtimeImageBuilt.done {
		return
	}
	base := baseImage(t, c)
	v, err := c.ServerVersion(ctx(t), client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	var progress strings.Builder
	bctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bin, cleanup, err := StaticBinary(bctx, BinaryOptions{Arch: v.Arch, Source: wd, FromSource: true, Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	defer cleanup()
	builtImage(e2eImage)
	if _, err := BuildImage(bctx, c, ImageSpec{Tag: e2eImage, Base: base, Binary: bin, Progress: &progress}); err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	runtimeImageBuilt.done = true
}

// TestSeedFlowDocker runs the seed's flow through the platform with the
// Docker driver and the real coding runtime (offline/demo) in the image
// `agenthost image build` makes: create with an initial prompt →
// RUNNING, a follow-up message, an approved bash call running in the
// container, the history, stop and start keeping it
// (the session database is on the data volume), delete removing
// container and volumes.
func TestSeedFlowDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the static agenthost and its image")
	}
	if os.Getenv(e2eEnv) == "0" {
		t.Skipf("%s=0: the seed flow in containers is off", e2eEnv)
	}
	c := engine(t)
	buildRuntimeImage(t, c)
	dir := t.TempDir()
	d := newDriver(t, c, dir, func(o *Options) { o.Image = e2eImage })
	env := platformtest.Start(t, platformtest.Options{
		Driver: d, DataDir: dir,
		Agents: agents.Config{
			Command: []string{"agenthost", "serve", "--role", "coding"},
			Ports:   agents.PortRange{Min: 37000, Max: 37999}, ProvisionTimeout: 60 * time.Second,
		},
	})
	t.Cleanup(func() {
		hs, _ := d.List(context.Background())
		for _, h := range hs {
			d.Destroy(context.Background(), h)
		}
	})
	api := env.Client(env.Token(t, "acme"))

	resp := api.Do(t, "POST", "/api/v1/agents", map[string]any{
		"name": "build-agent", "model": "offline/demo",
		"initialPrompt": "Set up a Node.js Express project with TypeScript",
	})
	if resp.Status == 504 && strings.Contains(string(resp.Body), "listening on http://127.0.0.1:") {
		t.Skipf("the coding runtime listens on 127.0.0.1 only, unreachable from the container's published port; it must listen on $%s (0.0.0.0 in a container): %s", EnvHost, resp.Body)
	}
	created := resp.Want(t, 200)
	id := created["agentId"].(string)
	sessions, _ := created["sessions"].([]any)
	if len(sessions) != 1 {
		t.Fatalf("create = %v", created)
	}
	sid := sessions[0].(map[string]any)["id"].(string)
	waitIdle(t, api, id)

	sent := api.Do(t, "POST", "/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sid, "message": "Now add user authentication with JWT"}).Want(t, 200)
	if sent["sessionId"] != sid {
		t.Fatalf("send = %v", sent)
	}
	waitIdle(t, api, id)

	// The agent's bash tool works in the container: a call approved once
	// runs (the image has a shell; with a FROM scratch image it failed
	// with exec: "bash": executable file not found).
	api.Do(t, "POST", "/api/v1/agents/"+id+"/messages", map[string]any{"sessionId": sid, "message": `use bash {"command": "echo ok from $(id -u)"}`}).Want(t, 200)
	perm := pendingPermission(t, api, id)
	if perm["permission"] != "bash" {
		t.Fatalf("permission = %v", perm)
	}
	api.Do(t, "POST", "/api/v1/agents/"+id+"/permissions/"+perm["id"].(string)+"/reply", map[string]any{"reply": "once"}).Want(t, 200)
	waitIdle(t, api, id)
	// The tools run in the runtime's sandbox, as its user "agent" (uid 1000
	// in a user namespace mapped onto the container's uid).
	if out := toolOutput(history(t, api, id, sid)); !strings.Contains(out, "ok from 1000") {
		t.Fatalf("bash in the container: want \"ok from 1000\" (the sandbox's user) in the tool output, got %q", out)
	}
	before := history(t, api, id, sid)
	if len(before) < 4 {
		t.Fatalf("history = %v", before)
	}

	api.Do(t, "POST", "/api/v1/agents/"+id+"/stop", nil).Want(t, 200)
	if st := api.Do(t, "GET", "/api/v1/agents/"+id, nil).Want(t, 200); st["status"] != "STOPPED" {
		t.Fatalf("after stop: %v", st)
	}
	api.Do(t, "POST", "/api/v1/agents/"+id+"/start", nil).Want(t, 200)
	if after := history(t, api, id, sid); len(after) != len(before) {
		t.Fatalf("after stop and start the history has %d messages, want %d", len(after), len(before))
	}
	api.Do(t, "POST", "/api/v1/agents/"+id+"/restart", nil).Want(t, 200)
	if after := history(t, api, id, sid); len(after) != len(before) {
		t.Fatalf("after restart the history has %d messages, want %d", len(after), len(before))
	}

	api.Do(t, "DELETE", "/api/v1/agents/"+id, nil).Want(t, 200)
	eventuallyGone(t, c, id)
}

func waitIdle(t *testing.T, api *platformtest.Client, id string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		st := api.Do(t, "GET", "/api/v1/agents/"+id, nil).Want(t, 200)
		if st["status"] != "RUNNING" {
			t.Fatalf("status = %v", st)
		}
		if st["busy"] == false {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent still busy: %v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func history(t *testing.T, api *platformtest.Client, id, sid string) []any {
	t.Helper()
	got := api.Do(t, "GET", fmt.Sprintf("/api/v1/agents/%s/messages?sessionId=%s", id, sid), nil).Want(t, 200)
	msgs, _ := got["messages"].([]any)
	return msgs
}

// pendingPermission waits for the agent's one pending permission.
func pendingPermission(t *testing.T, api *platformtest.Client, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := api.Do(t, "GET", "/api/v1/agents/"+id+"/permissions", nil).Want(t, 200)
		if l, _ := got["permissions"].([]any); len(l) > 0 {
			p, _ := l[0].(map[string]any)
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("no permission asked: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// toolOutput joins the tool outputs of a history's messages.
func toolOutput(msgs []any) string {
	var b strings.Builder
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		info, _ := mm["info"].(map[string]any)
		parts, _ := info["parts"].([]any)
		for _, p := range parts {
			pm, _ := p.(map[string]any)
			if st, ok := pm["state"].(map[string]any); ok {
				fmt.Fprintf(&b, "%v\n", st["output"])
			}
		}
	}
	return b.String()
}
