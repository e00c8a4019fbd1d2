package platform_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/runtime/runtimetest"
	"go.uber.org/goleak"
)

// TestLifecycle walks an agent through create, stop, start, restart and
// delete with real runtimes, checking the seed's flags, the workspace kept
// across restarts and the environment the runtime received.
func TestLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, pg bool) {
		r := newRig(t, pg, agents.Config{})
		c := r.env.Client(r.env.Token(t, "acme"))
		const orgValue, scopeValue = "org-SECRET-value", "scope-SECRET-value"
		c.Do(t, "PUT", "/api/v1/secrets", map[string]any{"key": "ORG_KEY", "value": orgValue}).Want(t, 201)
		scope := c.Do(t, "POST", "/api/v1/scopes", map[string]any{"name": "production"}).Want(t, 201)["id"].(string)
		c.Do(t, "PUT", "/api/v1/scopes/"+scope+"/secrets", map[string]any{"key": "ANTHROPIC_API_KEY", "value": scopeValue}).Want(t, 201)

		created := c.Do(t, "POST", "/api/v1/agents", map[string]any{
			"name": "prod-agent", "scope": "production", "model": "anthropic/claude-sonnet-4-6",
			"hiddenPrompt": "be terse", "initialPrompt": "Build a REST API",
		}).Want(t, 200)
		id := created["agentId"].(string)
		if created["scopeId"] != scope || created["url"] != r.env.URL+"/a/"+id || len(created["sessions"].([]any)) != 0 {
			t.Fatalf("create = %v", created)
		}
		got := status(t, c, id)
		if got["status"] != "RUNNING" || got["busy"] != false || got["errorMsg"] != nil {
			t.Fatalf("after create: %v", got)
		}

		env := r.runtimeEnv(id)
		if env["ANTHROPIC_API_KEY"] != scopeValue || env["ORG_KEY"] != "" {
			t.Fatalf("a scoped agent must get its scope's secrets only: %v", env)
		}
		if env[agents.EnvModel] != "anthropic/claude-sonnet-4-6" || env[agents.EnvHiddenPrompt] != "be terse" || env[agents.EnvAgentID] != id ||
			len(env[agents.EnvControlToken]) != 64 || env["AGENTHOST_PORT"] == "" || env["AGENTHOST_WORKSPACE"] == "" {
			t.Fatalf("runtime settings: %v", env)
		}
		if strings.Contains(string(r.agent(id).ControlToken), env[agents.EnvControlToken]) {
			t.Fatal("the control token is stored in clear")
		}
		if env[agents.EnvToolEnv] != "ANTHROPIC_API_KEY" {
			t.Fatalf("%s = %q, want the scope's secrets' names only", agents.EnvToolEnv, env[agents.EnvToolEnv])
		}

		stop := c.Do(t, "POST", "/api/v1/agents/"+id+"/stop", nil).Want(t, 200)
		if stop["status"] != "STOPPED" || stop["stopped"] != true || stop["agentId"] != id {
			t.Fatalf("stop = %v", stop)
		}
		if st, _ := r.driver.Inspect(context.Background(), r.handle(id)); st.State == runtime.StateRunning {
			t.Fatal("runtime still running after stop")
		}
		if s := c.Do(t, "POST", "/api/v1/agents/"+id+"/stop", nil).Want(t, 200); s["stopped"] != false || s["status"] != "STOPPED" {
			t.Fatalf("second stop = %v", s)
		}
		if s := status(t, c, id); s["status"] != "STOPPED" || s["busy"] != false {
			t.Fatalf("stopped agent = %v", s)
		}

		start := c.Do(t, "POST", "/api/v1/agents/"+id+"/start", nil).Want(t, 200)
		if start["status"] != "RUNNING" || start["started"] != true {
			t.Fatalf("start = %v", start)
		}
		if s := c.Do(t, "POST", "/api/v1/agents/"+id+"/start", nil).Want(t, 200); s["started"] != false {
			t.Fatalf("second start = %v", s)
		}
		if n := r.starts(id); n != 2 {
			t.Fatalf("workspace after stop/start shows %d starts, want 2 (workspace must be kept)", n)
		}
		// A secret added later reaches the runtime at its next start.
		c.Do(t, "PUT", "/api/v1/scopes/"+scope+"/secrets", map[string]any{"key": "LATER", "value": "x"}).Want(t, 201)
		rs := c.Do(t, "POST", "/api/v1/agents/"+id+"/restart", nil).Want(t, 200)
		if rs["status"] != "RUNNING" || rs["restarted"] != true {
			t.Fatalf("restart = %v", rs)
		}
		if n := r.starts(id); n != 3 {
			t.Fatalf("%d starts after restart, want 3", n)
		}
		if env := r.runtimeEnv(id); env["LATER"] != "x" || env[agents.EnvToolEnv] != "ANTHROPIC_API_KEY,LATER" {
			t.Fatalf("restart did not pick up the new secret: LATER=%q, %s=%q", env["LATER"], agents.EnvToolEnv, env[agents.EnvToolEnv])
		}
		// Restart of a STOPPED agent starts it.
		c.Do(t, "POST", "/api/v1/agents/"+id+"/stop", nil).Want(t, 200)
		if rs := c.Do(t, "POST", "/api/v1/agents/"+id+"/restart", nil).Want(t, 200); rs["status"] != "RUNNING" {
			t.Fatalf("restart from STOPPED = %v", rs)
		}

		h := r.handle(id)
		c.Do(t, "DELETE", "/api/v1/agents/"+id, nil).Want(t, 200)
		if st, _ := r.driver.Inspect(context.Background(), h); st.State != runtime.StateUnknown {
			t.Fatalf("runtime after delete: %v, want gone", st.State)
		}
		c.Do(t, "GET", "/api/v1/agents/"+id, nil).WantError(t, 404, "agent not found")

		// An unscoped agent gets the org-level secrets only.
		id2 := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "org-agent"}).Want(t, 200)["agentId"].(string)
		env = r.runtimeEnv(id2)
		if env["ORG_KEY"] != orgValue || env["ANTHROPIC_API_KEY"] != "" || env[agents.EnvModel] != "offline/demo" {
			t.Fatalf("org-level agent env: ORG_KEY=%q ANTHROPIC_API_KEY=%q model=%q", env["ORG_KEY"], env["ANTHROPIC_API_KEY"], env[agents.EnvModel])
		}
		if _, ok := env[agents.EnvHiddenPrompt]; ok {
			t.Fatal("hidden prompt set without one")
		}

		logs := r.env.Logs.String()
		if strings.Contains(logs, "SECRET-value") || strings.Contains(logs, env[agents.EnvControlToken]) {
			t.Fatal("a secret or control token reached the logs")
		}
		if !strings.Contains(logs, "ANTHROPIC_API_KEY") {
			t.Fatal("the debug log of secret keys is missing; the leak check above proves nothing")
		}
	})
}

func TestRunningCap(t *testing.T) {
	r := newRig(t, false, agents.Config{MaxRunning: 1})
	c := r.env.Client(r.env.Token(t, "acme"))
	a := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a"}).Want(t, 200)["agentId"].(string)
	c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "b"}).WantError(t, 503, "concurrent agent cap")
	c.Do(t, "POST", "/api/v1/agents/"+a+"/stop", nil).Want(t, 200)
	b := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "b"}).Want(t, 200)["agentId"].(string)
	c.Do(t, "POST", "/api/v1/agents/"+a+"/start", nil).WantError(t, 503, "concurrent agent cap")
	c.Do(t, "POST", "/api/v1/agents/"+a+"/restart", nil).WantError(t, 503, "concurrent agent cap")
	if s := status(t, c, a); s["status"] != "STOPPED" {
		t.Fatalf("an agent refused for capacity must stay STOPPED: %v", s)
	}
	// Restarting the running one keeps its slot.
	c.Do(t, "POST", "/api/v1/agents/"+b+"/restart", nil).Want(t, 200)
	c.Do(t, "DELETE", "/api/v1/agents/"+b, nil).Want(t, 200)
	c.Do(t, "POST", "/api/v1/agents/"+a+"/start", nil).Want(t, 200)
}

// TestProvisionTimeout: a runtime that never answers /health is 504 and
// ERROR, and the runtime is stopped.
func TestProvisionTimeout(t *testing.T) {
	r := newRig(t, false, agents.Config{Command: []string{"/bin/sleep", "300"}, ProvisionTimeout: time.Second})
	c := r.env.Client(r.env.Token(t, "acme"))
	failed := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "slow"})
	failed.WantError(t, 504, "did not answer /health within 1s", "agentId", "status")
	a := c.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)["agents"].([]any)[0].(map[string]any)
	id := a["agentId"].(string)
	// The caller learns which agent was left behind, to delete it.
	if body := failed.JSON(t); body["agentId"] != id || body["status"] != "ERROR" {
		t.Fatalf("504 body = %v, want agentId %s and status ERROR", body, id)
	}
	if a["status"] != "ERROR" || !strings.Contains(a["errorMsg"].(string), "timed out") {
		t.Fatalf("agent = %v", a)
	}
	if st, _ := r.driver.Inspect(context.Background(), r.handle(id)); st.State == runtime.StateRunning {
		t.Fatal("the runtime that timed out is still running")
	}
	c.Do(t, "POST", "/api/v1/agents/"+id+"/start", nil).WantError(t, 400, "ERROR")
}

// TestStartFailure: a runtime that exits at once is 503 with its last
// output in errorMsg.
func TestStartFailure(t *testing.T) {
	r := newRig(t, false, agents.Config{}, "-exit-code", "3", "-exit-after", "0s", "-ignore-term")
	c := r.env.Client(r.env.Token(t, "acme"))
	failed := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "broken"})
	failed.WantError(t, 503, "exited", "agentId", "status")
	a := c.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)["agents"].([]any)[0].(map[string]any)
	if body := failed.JSON(t); body["agentId"] != a["agentId"] || body["status"] != "ERROR" {
		t.Fatalf("503 body = %v, want the ERROR agent's id %v", body, a["agentId"])
	}
	if a["status"] != "ERROR" || !strings.Contains(a["errorMsg"].(string), "fakeruntime: exiting with code 3") {
		t.Fatalf("errorMsg must quote the runtime's last output: %v", a)
	}
}

// TestCrashRestart: a runtime that dies is restarted with backoff; one that
// keeps dying ends ERROR with its last output.
func TestCrashRestart(t *testing.T) {
	r := newRig(t, false, agents.Config{Restart: agents.RestartPolicy{Attempts: 2, Backoff: 20 * time.Millisecond}},
		"-exit-code", "7", "-exit-after", "1500ms")
	c := r.env.Client(r.env.Token(t, "acme"))
	id := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "crashy"}).Want(t, 200)["agentId"].(string)
	eventually(t, "a restart after the first crash", func() bool {
		var v struct{ Starts int }
		return r.fake(id, "/starts", &v) == nil && v.Starts >= 2
	})
	eventually(t, "ERROR after repeated crashes", func() bool { return status(t, c, id)["status"] == "ERROR" })
	msg := status(t, c, id)["errorMsg"].(string)
	if !strings.Contains(msg, "gave up after 2 restarts") || !strings.Contains(msg, "exit code 7") || !strings.Contains(msg, "fakeruntime: exiting with code 7") {
		t.Fatalf("errorMsg = %q", msg)
	}
	if !strings.Contains(r.env.Logs.String(), "runtime restarted") {
		t.Fatal("no restart was logged")
	}
}

// TestStopDuringBackoff: stopping an agent whose runtime crashed cancels
// the pending restart. The backoff's clock is the test's: it fires the
// timer once the agent is stopped, instead of sleeping past it.
func TestStopDuringBackoff(t *testing.T) {
	timers := make(chan chan time.Time, 4)
	after := func(time.Duration) <-chan time.Time {
		ch := make(chan time.Time, 1)
		timers <- ch
		return ch
	}
	r := newRig(t, false, agents.Config{Restart: agents.RestartPolicy{Attempts: 5, Backoff: time.Hour}, After: after},
		"-exit-code", "1", "-exit-after", "500ms")
	c := r.env.Client(r.env.Token(t, "acme"))
	id := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a"}).Want(t, 200)["agentId"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var backoff chan time.Time
	select { // the supervisor waits out its backoff
	case backoff = <-timers:
	case <-ctx.Done():
		t.Fatalf("no restart backoff after the crash:\n%s", r.env.Logs)
	}
	c.Do(t, "POST", "/api/v1/agents/"+id+"/stop", nil).Want(t, 200)
	backoff <- time.Now()
	if err := r.env.Logs.WaitFor(ctx, "runtime not restarted"); err != nil {
		t.Fatal(err)
	}
	if s := status(t, c, id); s["status"] != "STOPPED" {
		t.Fatalf("after the backoff: %v", s)
	}
	if st, _ := r.driver.Inspect(context.Background(), r.handle(id)); st.State == runtime.StateRunning {
		t.Fatal("the supervisor restarted a stopped agent")
	}
}

// TestDeleteWhileProvisioning: DELETE cancels a provisioning in progress.
func TestDeleteWhileProvisioning(t *testing.T) {
	r := newRig(t, false, agents.Config{Command: []string{"/bin/sleep", "300"}, ProvisionTimeout: time.Minute})
	c := r.env.Client(r.env.Token(t, "acme"))
	done := make(chan *platformtest.Response, 1)
	go func() { done <- c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "slow"}) }()
	var id string
	eventually(t, "the PROVISIONING agent", func() bool {
		list := c.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)["agents"].([]any)
		if len(list) == 1 && list[0].(map[string]any)["status"] == "PROVISIONING" && len(r.agent(list[0].(map[string]any)["agentId"].(string)).Handle) > 0 {
			id = list[0].(map[string]any)["agentId"].(string)
			return true
		}
		return false
	})
	h := r.handle(id)
	c.Do(t, "DELETE", "/api/v1/agents/"+id, nil).Want(t, 200)
	select {
	case resp := <-done:
		resp.WantError(t, 404, "deleted while it was being provisioned")
	case <-time.After(30 * time.Second):
		t.Fatal("create did not return after delete")
	}
	if st, _ := r.driver.Inspect(context.Background(), h); st.State != runtime.StateUnknown {
		t.Fatalf("runtime after delete: %v", st.State)
	}
}

// TestReconcile restarts the platform: a running runtime is re-attached,
// one that died while the platform was down is started again, a STOPPED
// agent stays stopped, an agent left PROVISIONING by a crash ends RUNNING,
// and a runtime no agent owns is destroyed.
func TestReconcile(t *testing.T) {
	backends(t, func(t *testing.T, pg bool) {
		r := newRig(t, pg, agents.Config{})
		c := r.env.Client(r.env.Token(t, "acme"))
		create := func(name string) string {
			return c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": name}).Want(t, 200)["agentId"].(string)
		}
		kept, died, stopped, provisioning := create("kept"), create("died"), create("stopped"), create("provisioning")
		c.Do(t, "POST", "/api/v1/agents/"+stopped+"/stop", nil).Want(t, 200)
		keptEndpoint := r.handle(kept).Endpoint
		diedHandle, a := r.handle(died), r.agent(provisioning)

		r.env.Stop(t)
		if err := r.driver.Stop(context.Background(), diedHandle, 0); err != nil {
			t.Fatal(err)
		}
		// A platform killed mid-create leaves PROVISIONING and a runtime.
		ctx := context.Background()
		st, err := platform.OpenStore(ctx, r.opts.DataDir, r.opts.DSN)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.UpdateAgentRuntime(ctx, a.OrgID, a.ID, store.AgentRuntime{Status: store.StatusProvisioning, Port: a.Port, Handle: a.Handle, Node: a.Node, UpdatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		// A runtime whose agent is gone.
		spec := runtime.Spec{ID: "corphan00000000000000000000", Port: runtimetest.FreePort(t), Command: []string{runtimetest.FakeRuntime(t)}}
		oh, err := r.driver.Start(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()

		r.restart()
		c = r.env.Client(c.Token)
		for _, id := range []string{kept, died, provisioning} {
			if s := status(t, c, id); s["status"] != "RUNNING" {
				t.Fatalf("agent %s after restart: %v", id, s)
			}
		}
		if n := r.starts(kept); n != 1 || r.handle(kept).Endpoint != keptEndpoint {
			t.Fatalf("the running runtime was restarted (%d starts) instead of re-attached", n)
		}
		if n := r.starts(died); n != 2 {
			t.Fatalf("the dead runtime: %d starts, want 2", n)
		}
		if s := status(t, c, stopped); s["status"] != "STOPPED" {
			t.Fatalf("stopped agent after restart: %v", s)
		}
		if st, _ := r.driver.Inspect(ctx, oh); st.State != runtime.StateUnknown {
			t.Fatalf("orphan runtime: %v, want destroyed", st.State)
		}
		// The re-attached runtime is supervised: a crash is restarted.
		if err := r.driver.Stop(ctx, r.handle(kept), 0); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the re-attached runtime's restart", func() bool {
			var v struct{ Starts int }
			return r.fake(kept, "/starts", &v) == nil && v.Starts == 2
		})
		// And the platform still controls it.
		c.Do(t, "POST", "/api/v1/agents/"+kept+"/stop", nil).Want(t, 200)
		c.Do(t, "DELETE", "/api/v1/agents/"+kept, nil).Want(t, 200)
	})
}

// TestNoGoroutineLeak: after a full lifecycle and Shutdown, no goroutine
// is left that was not there before (goleak waits a little for those on
// their way out, without a fixed sleep).
func TestNoGoroutineLeak(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Run("lifecycle", func(t *testing.T) {
		r := newRig(t, false, agents.Config{})
		c := r.env.Client(r.env.Token(t, "acme"))
		id := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a"}).Want(t, 200)["agentId"].(string)
		c.Do(t, "POST", "/api/v1/agents/"+id+"/restart", nil).Want(t, 200)
		c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "b"}).Want(t, 200) // left running at shutdown
		c.Do(t, "DELETE", "/api/v1/agents/"+id, nil).Want(t, 200)
	})
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, before)
}

// TestOtherNode: a replica does not stop a runtime another replica runs.
func TestOtherNode(t *testing.T) {
	r := newRig(t, false, agents.Config{})
	c := r.env.Client(r.env.Token(t, "acme"))
	id := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "a"}).Want(t, 200)["agentId"].(string)
	a := r.agent(id)
	if a.Node != "local" {
		t.Fatalf("node = %q, want local (SQLite)", a.Node)
	}
	set := func(node string) {
		err := r.env.Server.Store().UpdateAgentRuntime(context.Background(), a.OrgID, id,
			store.AgentRuntime{Status: store.StatusRunning, Port: a.Port, Handle: a.Handle, Node: node, UpdatedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
	}
	set("elsewhere")
	c.Do(t, "POST", "/api/v1/agents/"+id+"/stop", nil).WantError(t, 503, `runs on another platform node ("elsewhere"; this is "local")`)
	c.Do(t, "POST", "/api/v1/agents/"+id+"/restart", nil).WantError(t, 503, "another platform node")
	set("local")
	c.Do(t, "POST", "/api/v1/agents/"+id+"/stop", nil).Want(t, 200)
}

// TestLifecycleWhileProvisioning: start, stop and restart of an agent that
// is still PROVISIONING answer 400 at once, while the create goes on.
func TestLifecycleWhileProvisioning(t *testing.T) {
	r := newRig(t, false, agents.Config{Command: []string{"/bin/sleep", "300"}, ProvisionTimeout: time.Minute})
	c := r.env.Client(r.env.Token(t, "acme"))
	done := make(chan *platformtest.Response, 1)
	go func() { done <- c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "slow"}) }()
	var id string
	eventually(t, "the PROVISIONING agent", func() bool {
		list := c.Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)["agents"].([]any)
		if len(list) == 1 && list[0].(map[string]any)["status"] == "PROVISIONING" {
			id = list[0].(map[string]any)["agentId"].(string)
			return true
		}
		return false
	})
	for _, op := range []string{"start", "stop", "restart"} {
		c.Do(t, "POST", "/api/v1/agents/"+id+"/"+op, nil).WantError(t, 400, "PROVISIONING")
		select {
		case <-done:
			t.Fatalf("%s waited for the create to end", op)
		default:
		}
	}
	c.Do(t, "DELETE", "/api/v1/agents/"+id, nil).Want(t, 200)
	<-done
}
