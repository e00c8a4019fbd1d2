package docker

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/runtime/runtimetest"
)

// idleRuntime stands for the control API of fakeruntime, which has none:
// every runtime is idle with no sessions and takes no prompts.
type idleRuntime struct{}

func (idleRuntime) Status(context.Context) (agents.RuntimeStatus, error) {
	return agents.RuntimeStatus{Sessions: []agents.Session{}}, nil
}

func (idleRuntime) Prompt(context.Context, string, string) (agents.Session, error) {
	return agents.Session{}, errors.New("fakeruntime has no control API")
}

func connectIdle(string, string) agents.RuntimeClient { return idleRuntime{} }

// TestPlatformLifecycle runs the platform with the Docker driver and the
// fake runtime's image: create → RUNNING with a healthy container carrying
// the agent's labels, stop/start keeping the workspace, a platform restart
// re-attaching to the running container, delete removing container and
// volume.
func TestPlatformLifecycle(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	dir := t.TempDir()
	opts := platformtest.Options{
		Driver:  newDriver(t, c, dir),
		DataDir: dir,
		Agents: agents.Config{
			Command: []string{"fakeruntime"}, Connect: connectIdle,
			Ports: agents.PortRange{Min: 36000, Max: 36999}, ProvisionTimeout: 60 * time.Second,
		},
	}
	env := platformtest.Start(t, opts)
	api := env.Client(env.Token(t, "acme"))

	id := api.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "in-a-container"}).Want(t, 200)["agentId"].(string)
	t.Cleanup(func() {
		d := newDriver(t, c, dir)
		hs, _ := d.List(context.Background())
		for _, h := range hs {
			d.Destroy(context.Background(), h)
		}
	})
	if st := api.Do(t, "GET", "/api/v1/agents/"+id, nil).Want(t, 200); st["status"] != "RUNNING" {
		t.Fatalf("status = %v, want RUNNING", st["status"])
	}
	in, err := c.ContainerInspect(ctx(t), ContainerName(id), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("the agent's container: %v", err)
	}
	labels := in.Container.Config.Labels
	if labels[agents.LabelAgent] != id || labels[agents.LabelOrg] == "" || labels[LabelManaged] != "true" {
		t.Errorf("labels = %v", labels)
	}
	endpoint := "http://127.0.0.1:" + labels[LabelPort]
	if err := runtimetest.WaitHealthy(ctx(t), endpoint, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var envs map[string]string
	getJSON(t, endpoint+"/env", &envs)
	if envs[agents.EnvAgentID] != id || envs[agents.EnvControlToken] == "" {
		t.Errorf("runtime environment lacks the platform's variables: agent id %q", envs[agents.EnvAgentID])
	}

	api.Do(t, "POST", "/api/v1/agents/"+id+"/stop", nil).Want(t, 200)
	if in, err := c.ContainerInspect(ctx(t), ContainerName(id), client.ContainerInspectOptions{}); err != nil || in.Container.State.Running {
		t.Fatalf("after stop: container running or gone (%v)", err)
	}
	api.Do(t, "POST", "/api/v1/agents/"+id+"/start", nil).Want(t, 200)
	var starts struct{ Starts int }
	getJSON(t, endpoint+"/starts", &starts)
	if starts.Starts != 2 {
		t.Errorf("starts = %d after stop and start, want 2 (workspace volume kept)", starts.Starts)
	}

	// A platform restart: the container keeps running and is re-attached.
	before, _ := c.ContainerInspect(ctx(t), ContainerName(id), client.ContainerInspectOptions{})
	env.Stop(t)
	opts.Driver = newDriver(t, c, dir)
	env = platformtest.Start(t, opts)
	env.WaitReconciled(t)
	api = env.Client(env.Token(t, "acme"))
	if st := api.Do(t, "GET", "/api/v1/agents/"+id, nil).Want(t, 200); st["status"] != "RUNNING" {
		t.Fatalf("after a platform restart: status = %v", st["status"])
	}
	after, err := c.ContainerInspect(ctx(t), ContainerName(id), client.ContainerInspectOptions{})
	if err != nil || after.Container.ID != before.Container.ID || !after.Container.State.Running {
		t.Errorf("after a platform restart the container was replaced or stopped (%v)", err)
	}

	api.Do(t, "DELETE", "/api/v1/agents/"+id, nil).Want(t, 200)
	eventuallyGone(t, c, id)
	if resp, err := http.Get(endpoint + "/health"); err == nil {
		resp.Body.Close()
		t.Error("the runtime still answers after delete")
	}
}

// eventuallyGone waits until runtime id's container and volume are gone.
func eventuallyGone(t *testing.T, c *client.Client, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, cerr := c.ContainerInspect(ctx(t), ContainerName(id), client.ContainerInspectOptions{})
		_, verr := c.VolumeInspect(ctx(t), VolumeName(id), client.VolumeInspectOptions{})
		if cerr != nil && verr != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container (%v) or volume (%v) of %s left after delete", cerr, verr, id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPlatformCrashToError: a container that keeps dying is restarted
// with backoff, then the agent is ERROR with the runtime's last lines in
// errorMsg.
func TestPlatformCrashToError(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	dir := t.TempDir()
	d := newDriver(t, c, dir)
	env := platformtest.Start(t, platformtest.Options{
		Driver: d, DataDir: dir,
		Agents: agents.Config{
			Command: []string{"fakeruntime", "-exit-code", "3", "-exit-after", "2s"}, Connect: connectIdle,
			Ports: agents.PortRange{Min: 38000, Max: 38999}, ProvisionTimeout: 60 * time.Second, StartTimeout: 60 * time.Second,
			Restart: agents.RestartPolicy{Attempts: 2, Backoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		},
	})
	t.Cleanup(func() {
		hs, _ := d.List(context.Background())
		for _, h := range hs {
			d.Destroy(context.Background(), h)
		}
	})
	api := env.Client(env.Token(t, "acme"))
	id := api.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "crashy"}).Want(t, 200)["agentId"].(string)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st := api.Do(t, "GET", "/api/v1/agents/"+id, nil).Want(t, 200)
		if st["status"] == "ERROR" {
			msg, _ := st["errorMsg"].(string)
			if !strings.Contains(msg, "exiting with code 3") || !strings.Contains(msg, "exit code 3") {
				t.Errorf("errorMsg = %q, want the exit code and the runtime's last lines", msg)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ERROR after repeated crashes: %v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
