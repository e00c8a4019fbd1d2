package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/runtime"
)

// uniqueNetwork returns a network name no other test (or test process)
// uses, and removes every network of that name when the test ends.
func uniqueNetwork(t testing.TB, c *client.Client) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := fmt.Sprintf("agenthost-test-%d-%s", os.Getpid(), hex.EncodeToString(b))
	t.Cleanup(func() { removeNetworks(t, c, name) })
	return name
}

// removeNetworks removes every network named exactly name, by id.
func removeNetworks(t testing.TB, c *client.Client, name string) {
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range networksNamed(t, c, name) {
		if _, err := c.NetworkRemove(cctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
			t.Logf("removing network %s (%s): %v", name, shortID(n.ID), err)
		}
	}
}

// networksNamed lists the networks whose name is exactly name (the
// engine's name filter also matches longer names).
func networksNamed(t testing.TB, c *client.Client, name string) []netInfo {
	t.Helper()
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.NetworkList(cctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		t.Fatal(err)
	}
	var out []netInfo
	for _, n := range res.Items {
		if n.Name == name {
			out = append(out, netInfo{ID: n.ID, Labels: n.Labels})
		}
	}
	return out
}

type netInfo struct {
	ID     string
	Labels map[string]string
}

// TestNetworkRace: several drivers (as several platform processes, or a
// test binary per package under `go test ./...`) start their first
// runtime on one engine at the same instant, on a network that does not
// exist yet. Every start succeeds, and afterwards one network of that
// name is left (issue 13: the engine made two, and every later start
// failed with "network ... is ambiguous").
func TestNetworkRace(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	netName := uniqueNetwork(t, c)
	const n = 4
	drivers := make([]*Driver, n)
	specs := make([]runtime.Spec, n)
	for i := range drivers {
		drivers[i] = newDriver(t, c, t.TempDir(), func(o *Options) { o.Network = netName })
		specs[i] = spec(t)
		destroyAtEnd(t, drivers[i], specs[i].ID)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	handles := make([]*runtime.Handle, n)
	ready := make(chan struct{})
	for i := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			handles[i], errs[i] = drivers[i].Start(ctx(t), specs[i])
		}()
	}
	close(ready)
	wg.Wait()
	for i, h := range handles {
		if h != nil {
			t.Cleanup(func() { drivers[i].Destroy(context.Background(), h) })
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("driver %d: Start: %v", i, err)
		}
	}
	// A driver that comes later (a restarted platform) heals whatever the
	// race left and starts too.
	late := newDriver(t, c, t.TempDir(), func(o *Options) { o.Network = netName })
	s := spec(t)
	h := start(t, late, s)
	healthy(t, h)
	// Starting a runtime again on a racing driver works as well.
	if handles[0] != nil {
		if err := drivers[0].Stop(ctx(t), handles[0], 0); err != nil {
			t.Fatal(err)
		}
		h0, err := drivers[0].Start(ctx(t), specs[0])
		if err != nil {
			t.Fatalf("restart after the race: %v", err)
		}
		healthy(t, h0)
	}
	nets := networksNamed(t, c, netName)
	if len(nets) != 1 {
		t.Fatalf("%d networks named %s after the race, want 1", len(nets), netName)
	}
	if nets[0].Labels[LabelManaged] != "true" || nets[0].Labels[LabelNetwork] != netName {
		t.Errorf("network labels = %v", nets[0].Labels)
	}
	id, err := late.EnsureNetwork(ctx(t))
	if err != nil || id != nets[0].ID {
		t.Errorf("EnsureNetwork = %s, %v; want %s", shortID(id), err, shortID(nets[0].ID))
	}
}

// TestNetworkDuplicatesHealed: an engine on which an earlier driver left
// several networks of one name (the state issue 13 found) is usable: the
// driver picks one by label and id, removes the empty others, and starts.
func TestNetworkDuplicatesHealed(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	netName := uniqueNetwork(t, c)
	var made []string
	for range 3 {
		// As the old driver made them: label agenthost.managed only.
		r, err := c.NetworkCreate(ctx(t), netName, client.NetworkCreateOptions{
			Driver: "bridge", Labels: map[string]string{LabelManaged: "true"},
		})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, r.ID)
	}
	if got := networksNamed(t, c, netName); len(got) != 3 {
		t.Fatalf("the engine made %d networks of one name, want 3 (the test relies on an engine that allows duplicates)", len(got))
	}
	d := newDriver(t, c, t.TempDir(), func(o *Options) { o.Network = netName })
	h := start(t, d, spec(t))
	healthy(t, h)
	nets := networksNamed(t, c, netName)
	if len(nets) != 1 {
		t.Fatalf("%d networks named %s after Start, want 1", len(nets), netName)
	}
	// Two drivers given the same duplicates choose the same one.
	id, err := newDriver(t, c, t.TempDir(), func(o *Options) { o.Network = netName }).EnsureNetwork(ctx(t))
	if err != nil || id != nets[0].ID {
		t.Errorf("a second driver chose %s (%v), the first %s", shortID(id), err, shortID(nets[0].ID))
	}
	in, err := c.ContainerInspect(ctx(t), decodeState(h).Container, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ep := in.Container.NetworkSettings.Networks[netName]; ep == nil || ep.NetworkID != nets[0].ID {
		t.Errorf("the container is on %v, want network %s", in.Container.NetworkSettings.Networks, shortID(nets[0].ID))
	}
}

// TestNetworkInUseKept: a duplicate that still has a container attached
// is never removed; the driver uses one network consistently.
func TestNetworkInUseKept(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	netName := uniqueNetwork(t, c)
	d1 := newDriver(t, c, t.TempDir(), func(o *Options) { o.Network = netName })
	h1 := start(t, d1, spec(t))
	healthy(t, h1)
	// Someone makes a second network of the name while a runtime uses the
	// first.
	if _, err := c.NetworkCreate(ctx(t), netName, client.NetworkCreateOptions{
		Driver: "bridge", Labels: map[string]string{LabelManaged: "true", LabelNetwork: netName},
	}); err != nil {
		t.Fatal(err)
	}
	d2 := newDriver(t, c, t.TempDir(), func(o *Options) { o.Network = netName })
	healthy(t, start(t, d2, spec(t)))
	nets := networksNamed(t, c, netName)
	if len(nets) != 1 {
		t.Errorf("%d networks named %s, want 1 (the empty duplicate removed, the used one kept)", len(nets), netName)
	}
	// The first runtime was not disturbed.
	if st, err := d1.Inspect(ctx(t), h1); err != nil || st.State != runtime.StateRunning {
		t.Errorf("first runtime: %v, %v", st.State, err)
	}
}

// TestNetworkAmbiguousName: while the engine has two networks of the
// runtimes' network name that cannot be removed (here an operator's, in
// use, beside the driver's), containers still start: the engine is given
// the network's id, never its ambiguous name.
func TestNetworkAmbiguousName(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	netName := uniqueNetwork(t, c)
	// An operator's network of that name, with a container on it.
	op, err := c.NetworkCreate(ctx(t), netName, client.NetworkCreateOptions{Driver: "bridge"})
	if err != nil {
		t.Fatal(err)
	}
	s := spec(t)
	destroyAtEnd(t, newDriver(t, c, t.TempDir()), s.ID)
	created, err := c.ContainerCreate(ctx(t), client.ContainerCreateOptions{
		Name: ContainerName(s.ID), Config: &container.Config{Image: testImage, Cmd: []string{"fakeruntime"}, Env: []string{"AGENTHOST_PORT=8000"}},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(op.ID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := c.ContainerStart(ctx(t), created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	// The driver's own network of the same name.
	ours, err := c.NetworkCreate(ctx(t), netName, client.NetworkCreateOptions{
		Driver: "bridge", Labels: map[string]string{LabelManaged: "true", LabelNetwork: netName},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, c, t.TempDir(), func(o *Options) { o.Network = netName })
	h := start(t, d, spec(t))
	healthy(t, h)
	in, err := c.ContainerInspect(ctx(t), decodeState(h).Container, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ep := in.Container.NetworkSettings.Networks[netName]; ep == nil || ep.NetworkID != ours.ID {
		t.Errorf("the runtime is on %+v, want the driver's network %s", in.Container.NetworkSettings.Networks, shortID(ours.ID))
	}
	if got := networksNamed(t, c, netName); len(got) != 2 {
		t.Errorf("%d networks named %s, want 2 (the operator's is never removed)", len(got), netName)
	}
}
