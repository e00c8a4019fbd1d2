package docker

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/runtime/runtimetest"
	"github.com/agenthost/agenthost/internal/testutil"
)

func TestMain(m *testing.M) {
	code := runtimetest.Main(m)
	if fakeImage.dir != "" {
		os.RemoveAll(fakeImage.dir)
	}
	removeBuiltImages()
	os.Exit(code)
}

// builtImages are the tags the tests built; TestMain removes them (the
// base stays: it is a cache, and scripts/service-docker.sh makes it).
var builtImages struct {
	sync.Mutex
	tags []string
}

func builtImage(tag string) {
	builtImages.Lock()
	defer builtImages.Unlock()
	builtImages.tags = append(builtImages.tags, tag)
}

func removeBuiltImages() {
	builtImages.Lock()
	defer builtImages.Unlock()
	if len(builtImages.tags) == 0 {
		return
	}
	c, err := NewClient()
	if err != nil {
		return
	}
	defer c.Close()
	for _, tag := range builtImages.tags {
		c.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true})
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// engine returns a client of the test engine. The tests are skipped when
// none is configured (AGENTHOST_TEST_DOCKER unset) outside CI; under
// CI=true a missing engine fails them.
func engine(t testing.TB) *client.Client {
	t.Helper()
	if os.Getenv("AGENTHOST_TEST_DOCKER") == "" && os.Getenv("CI") != "true" {
		t.Skip("no Docker engine: run ./scripts/service-docker.sh and set AGENTHOST_TEST_DOCKER=1")
	}
	c, err := NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Ping(ctx, c); err != nil {
		t.Fatalf("Docker engine required (AGENTHOST_TEST_DOCKER or CI set): %v", err)
	}
	return c
}

// testImage is the image the conformance suite runs: the fake runtime,
// built static, FROM scratch by BuildImage.
const testImage = "agenthost-runtimetest:latest"

var fakeImage struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// fakeRuntimeBinary builds the fake runtime as a static Linux binary.
func fakeRuntimeBinary(t testing.TB) string {
	t.Helper()
	fakeImage.once.Do(func() {
		fakeImage.dir, fakeImage.err = os.MkdirTemp("", "fakeruntime-static-")
		if fakeImage.err != nil {
			return
		}
		fakeImage.bin = filepath.Join(fakeImage.dir, "fakeruntime")
		cmd := exec.Command("go", "build", "-o", fakeImage.bin, ".")
		cmd.Dir = runtimetest.FakeRuntimeSource()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goruntime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			fakeImage.err = fmt.Errorf("go build fakeruntime: %w\n%s", err, out)
		}
	})
	if fakeImage.err != nil {
		t.Fatal(fakeImage.err)
	}
	return fakeImage.bin
}

var buildOnce struct {
	sync.Mutex
	done bool
}

// ensureTestImage builds testImage once per test binary.
func ensureTestImage(t testing.TB, c *client.Client) {
	t.Helper()
	buildOnce.Lock()
	defer buildOnce.Unlock()
	if buildOnce.done {
		return
	}
	var progress strings.Builder
	_, err := BuildImage(ctx(t), c, ImageSpec{
		Tag: testImage, Binary: fakeRuntimeBinary(t), BinaryName: "fakeruntime",
		Cmd: []string{"fakeruntime"}, Progress: &progress,
	})
	builtImage(testImage)
	if err != nil {
		t.Fatalf("building %s: %v\n%s", testImage, err, progress.String())
	}
	buildOnce.done = true
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// newDriver returns a driver of the test image whose scope is unique to
// dir, so tests never list each other's runtimes.
func newDriver(t testing.TB, c *client.Client, dir string, mod ...func(*Options)) *Driver {
	t.Helper()
	sum := sha256.Sum256([]byte(dir))
	opts := Options{
		Image: testImage, Client: c, Logger: quiet, OrphanGrace: -1,
		Scope: fmt.Sprintf("test-%x", sum),
		// A network per test, so no test depends on (or races another
		// test binary for) a network the engine may already have.
		Network: fmt.Sprintf("agenthost-test-%x", sum[:8]),
	}
	for _, m := range mod {
		m(&opts)
	}
	t.Cleanup(func() { removeNetworks(t, c, opts.Network) })
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func harness(t *testing.T) runtimetest.Harness {
	c := engine(t)
	ensureTestImage(t, c)
	return runtimetest.Harness{
		New: func(t *testing.T, dir string) runtime.Driver { return newDriver(t, c, dir) },
		Command: func(t *testing.T, args ...string) []string {
			return append([]string{"fakeruntime"}, args...)
		},
		Image: testImage,
	}
}

func TestConformance(t *testing.T) { runtimetest.Run(t, harness(t)) }

var seq struct {
	sync.Mutex
	n int
}

// spec returns a spec of the fake runtime with a fresh id and port.
func spec(t testing.TB, args ...string) runtime.Spec {
	seq.Lock()
	seq.n++
	n := seq.n
	seq.Unlock()
	return runtime.Spec{
		ID:      fmt.Sprintf("dk%d-%d", os.Getpid(), n),
		Labels:  map[string]string{"agenthost.agent": "agent-x", "agenthost.org": "org-y"},
		Port:    testutil.FreePort(t),
		Command: append([]string{"fakeruntime"}, args...),
		Env:     map[string]string{"ANTHROPIC_API_KEY": "sk-test"},
	}
}

// start starts s on d and destroys the runtime when the test ends.
func start(t *testing.T, d *Driver, s runtime.Spec) *runtime.Handle {
	t.Helper()
	destroyAtEnd(t, d, s.ID)
	h, err := d.Start(ctx(t), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d.Destroy(c, h)
	})
	return h
}

// destroyAtEnd removes runtime id's container and volumes when the test
// ends, whether or not its Start succeeded.
func destroyAtEnd(t *testing.T, d *Driver, id string) {
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d.Destroy(c, &runtime.Handle{ID: id, Driver: Name})
	})
}

func healthy(t *testing.T, h *runtime.Handle) {
	t.Helper()
	if err := runtimetest.WaitHealthy(ctx(t), h.Endpoint, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestContainerSettings checks the isolation the package promises on the
// container the engine actually created.
func TestContainerSettings(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	d := newDriver(t, c, t.TempDir(), func(o *Options) {
		o.Resources = Resources{MemoryBytes: 256 << 20, NanoCPUs: 5e8, PidsLimit: 64, NofileLimit: 1024}
	})
	s := spec(t)
	s.Resources.PidsLimit = 32 // the spec's limit wins over the options'
	s.Resources.NofileLimit = 512
	h := start(t, d, s)
	healthy(t, h)
	if want := fmt.Sprintf("http://127.0.0.1:%d", s.Port); h.Endpoint != want {
		t.Errorf("Endpoint = %s, want %s", h.Endpoint, want)
	}
	in, err := c.ContainerInspect(ctx(t), ContainerName(s.ID), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hc, cfg := in.Container.HostConfig, in.Container.Config
	if !hc.ReadonlyRootfs {
		t.Error("root filesystem is writable")
	}
	if !slices.Contains(hc.CapDrop, "ALL") || len(hc.CapAdd) > 0 || hc.Privileged {
		t.Errorf("CapDrop = %v, CapAdd = %v, Privileged = %v: want every capability dropped", hc.CapDrop, hc.CapAdd, hc.Privileged)
	}
	if !slices.Contains(hc.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("SecurityOpt = %.200q, want no-new-privileges", hc.SecurityOpt)
	}
	profile, err := SeccompProfile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(hc.SecurityOpt, "seccomp="+string(profile)) {
		t.Errorf("SecurityOpt = %.200q, want the driver's seccomp profile", hc.SecurityOpt)
	}
	if slices.ContainsFunc(hc.SecurityOpt, func(s string) bool { return s == "seccomp=unconfined" || s == "label=disable" }) {
		t.Errorf("SecurityOpt = %.200q: a confinement is off", hc.SecurityOpt)
	}
	if hc.MaskedPaths == nil || len(hc.MaskedPaths) != 0 || hc.ReadonlyPaths == nil || len(hc.ReadonlyPaths) != 0 {
		t.Errorf("MaskedPaths = %v, ReadonlyPaths = %v: want systempaths=unconfined (both empty) so bubblewrap can mount /proc", hc.MaskedPaths, hc.ReadonlyPaths)
	}
	if len(hc.Ulimits) != 1 || hc.Ulimits[0].Name != "nofile" || hc.Ulimits[0].Hard != 512 || hc.Ulimits[0].Soft != 512 {
		t.Errorf("Ulimits = %v, want nofile 512", hc.Ulimits)
	}
	if hc.UsernsMode != "" || hc.PidMode != "" || hc.IpcMode.IsHost() || hc.UTSMode.IsHost() {
		t.Errorf("namespaces shared with the host: userns %q pid %q ipc %q uts %q", hc.UsernsMode, hc.PidMode, hc.IpcMode, hc.UTSMode)
	}
	netID, err := d.EnsureNetwork(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if hc.NetworkMode.IsHost() || string(hc.NetworkMode) != netID || len(in.Container.NetworkSettings.Networks) != 1 || in.Container.NetworkSettings.Networks[d.opts.Network] == nil {
		t.Errorf("NetworkMode = %s, networks %v; want only %s (%s)", hc.NetworkMode, in.Container.NetworkSettings.Networks, d.opts.Network, shortID(netID))
	}
	netIn, err := c.NetworkInspect(ctx(t), netID, client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if netIn.Network.Options["com.docker.network.bridge.enable_icc"] != "false" || netIn.Network.Internal {
		t.Errorf("network options = %v, internal %v: want inter-container traffic off, egress on", netIn.Network.Options, netIn.Network.Internal)
	}
	for port, bs := range hc.PortBindings {
		for _, b := range bs {
			if b.HostIP.String() != "127.0.0.1" {
				t.Errorf("port %s published on %s, want 127.0.0.1 only", port, b.HostIP)
			}
		}
	}
	// What the engine bound, not just what was asked for.
	for port, bs := range in.Container.NetworkSettings.Ports {
		for _, b := range bs {
			if b.HostIP.String() != "127.0.0.1" {
				t.Errorf("engine bound %s on %s", port, b.HostIP)
			}
		}
	}
	if hc.Memory != 256<<20 || hc.NanoCPUs != 5e8 || hc.PidsLimit == nil || *hc.PidsLimit != 32 {
		t.Errorf("limits: memory %d, nanoCPUs %d, pids %v", hc.Memory, hc.NanoCPUs, hc.PidsLimit)
	}
	if _, ok := hc.Tmpfs["/tmp"]; !ok {
		t.Errorf("Tmpfs = %v, want /tmp", hc.Tmpfs)
	}
	if hc.RestartPolicy.Name != "no" && hc.RestartPolicy.Name != "" {
		t.Errorf("RestartPolicy = %v, want none (the platform supervises)", hc.RestartPolicy)
	}
	var ws bool
	for _, m := range in.Container.Mounts {
		if m.Destination == Workspace && m.Name == VolumeName(s.ID) && m.RW {
			ws = true
		}
	}
	if !ws {
		t.Errorf("mounts = %+v, want volume %s at %s", in.Container.Mounts, VolumeName(s.ID), Workspace)
	}
	for k, v := range map[string]string{LabelManaged: "true", LabelRuntime: s.ID, "agenthost.agent": "agent-x", "agenthost.org": "org-y"} {
		if cfg.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cfg.Labels[k], v)
		}
	}
	env := runtimetest.Env(t, h)
	if env["ANTHROPIC_API_KEY"] != "sk-test" || env["AGENTHOST_WORKSPACE"] != Workspace || env[EnvHost] != "0.0.0.0" || env["AGENTHOST_DATA_DIR"] != DataDir {
		t.Errorf("environment: %v", env)
	}
	top, err := c.ContainerTop(ctx(t), in.Container.ID, client.ContainerTopOptions{Arguments: []string{"-o", "pid,uid,comm"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range top.Processes {
		if len(p) > 1 && p[1] == "0" {
			t.Errorf("a process runs as root in the container: %v", p)
		}
	}
	vol, err := c.VolumeInspect(ctx(t), VolumeName(s.ID), client.VolumeInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if vol.Volume.Labels[LabelRuntime] != s.ID || vol.Volume.Labels["agenthost.org"] != "org-y" {
		t.Errorf("volume labels = %v", vol.Volume.Labels)
	}
}

// TestRestartRefreshesEnvironment: secrets are injected at container
// create, and Start makes a new container each time, so a restart picks
// up changed secrets while the workspace stays.
func TestRestartRefreshesEnvironment(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	d := newDriver(t, c, t.TempDir())
	s := spec(t)
	h := start(t, d, s)
	healthy(t, h)
	if err := d.Stop(ctx(t), h, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	s.Env = map[string]string{"ANTHROPIC_API_KEY": "sk-rotated"}
	s.Port = testutil.FreePort(t)
	h2 := start(t, d, s)
	healthy(t, h2)
	if env := runtimetest.Env(t, h2); env["ANTHROPIC_API_KEY"] != "sk-rotated" {
		t.Errorf("after restart: ANTHROPIC_API_KEY = %q, want the new value", env["ANTHROPIC_API_KEY"])
	}
	var starts struct{ Starts int }
	getJSON(t, h2.Endpoint+"/starts", &starts)
	if starts.Starts != 2 {
		t.Errorf("starts = %d, want 2 (workspace kept)", starts.Starts)
	}
	// The old handle names the removed container.
	if st, err := d.Inspect(ctx(t), h); err != nil || st.State != runtime.StateUnknown {
		t.Errorf("Inspect(old handle) = %v, %v; want unknown", st.State, err)
	}
}

// TestListAndOrphans plays the platform's reconcile: a new driver finds
// the runtimes of its scope (and only those), running or stopped, and
// Destroy of a listed handle removes container and volume.
func TestListAndOrphans(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	dir := t.TempDir()
	d := newDriver(t, c, dir)
	running, stopped := spec(t), spec(t)
	hr := start(t, d, running)
	hs := start(t, d, stopped)
	healthy(t, hr)
	if err := d.Stop(ctx(t), hs, 0); err != nil {
		t.Fatal(err)
	}

	other := newDriver(t, c, t.TempDir())
	if hs, err := other.List(ctx(t)); err != nil || len(hs) != 0 {
		t.Errorf("another scope lists %v, %v; want nothing", hs, err)
	}
	graced := newDriver(t, c, dir, func(o *Options) { o.OrphanGrace = time.Hour })
	if hs, err := graced.List(ctx(t)); err != nil || len(hs) != 0 {
		t.Errorf("within the grace period List = %v, %v; want nothing", hs, err)
	}

	d2 := newDriver(t, c, dir)
	list, err := d2.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]*runtime.Handle{}
	for _, h := range list {
		ids[h.ID] = h
	}
	if len(list) != 2 || ids[running.ID] == nil || ids[stopped.ID] == nil {
		t.Fatalf("List = %v, want %s and %s", list, running.ID, stopped.ID)
	}
	if got := ids[running.ID].Endpoint; got != hr.Endpoint {
		t.Errorf("listed endpoint = %s, want %s", got, hr.Endpoint)
	}
	if err := d2.Recover(ctx(t), ids[running.ID]); err != nil {
		t.Errorf("Recover(listed running) = %v", err)
	}
	for _, h := range list {
		if err := d2.Destroy(ctx(t), h); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []runtime.Spec{running, stopped} {
		if _, err := c.ContainerInspect(ctx(t), ContainerName(s.ID), client.ContainerInspectOptions{}); err == nil {
			t.Errorf("container of %s still exists", s.ID)
		}
		if _, err := c.VolumeInspect(ctx(t), VolumeName(s.ID), client.VolumeInspectOptions{}); err == nil {
			t.Errorf("volume of %s still exists", s.ID)
		}
	}
	if list, err := d2.List(ctx(t)); err != nil || len(list) != 0 {
		t.Errorf("List after Destroy = %v, %v", list, err)
	}
}

// TestStartErrors: a missing image says how to build it; a port already
// published by another runtime fails Start and leaves no container.
func TestStartErrors(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	d := newDriver(t, c, t.TempDir())
	s := spec(t)
	s.Image = "agenthost-no-such-image:never"
	_, err := d.Start(ctx(t), s)
	if err == nil || !strings.Contains(err.Error(), "agenthost image build") {
		t.Errorf("Start with a missing image: %v", err)
	}
	d.Destroy(ctx(t), &runtime.Handle{ID: s.ID, Driver: Name})

	a := spec(t)
	start(t, d, a)
	b := spec(t)
	b.Port = a.Port
	if _, err := d.Start(ctx(t), b); err == nil {
		t.Error("Start on a port another runtime publishes succeeded")
	}
	if _, err := c.ContainerInspect(ctx(t), ContainerName(b.ID), client.ContainerInspectOptions{}); err == nil {
		t.Error("a container that failed to start was left behind")
	}
	d.Destroy(ctx(t), &runtime.Handle{ID: b.ID, Driver: Name})

	bad := spec(t)
	bad.Labels[LabelRuntime] = "spoof"
	if _, err := d.Start(ctx(t), bad); err == nil {
		t.Error("a spec may not set the driver's labels")
	}
	if _, err := New(Options{Network: "host", Client: c}); err == nil {
		t.Error("New accepted the host network")
	}
}

// TestCrashLogs: a runtime that dies reports its exit code and last lines,
// which the platform quotes in errorMsg.
func TestCrashLogs(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	d := newDriver(t, c, t.TempDir(), func(o *Options) { o.LogLines = 2 })
	h := start(t, d, spec(t, "-exit-code", "7", "-exit-after", "100ms"))
	res, err := d.Wait(ctx(t), h)
	if err != nil || res.ExitCode != 7 || res.Err != nil {
		st, _ := d.Inspect(ctx(t), h)
		t.Fatalf("Wait = %+v, %v; want exit code 7; last lines %q", res, err, st.Logs)
	}
	// The engine collects a container's output asynchronously: its last
	// line can reach the log a moment after the exit.
	var st runtime.Status
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err = d.Inspect(ctx(t), h)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(st.Logs, "\n"), "exiting with code 7") || time.Now().After(deadline) {
			break
		}
	}
	if st.State != runtime.StateExited || st.ExitCode != 7 || len(st.Logs) != 2 || !strings.Contains(strings.Join(st.Logs, "\n"), "exiting with code 7") {
		t.Errorf("Inspect = %+v, want exited 7 with the last 2 lines", st)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestNetworkRecreated: a runtimes' network removed behind the driver's
// back is made again at the next Start.
func TestNetworkRecreated(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	netName := uniqueNetwork(t, c)
	d := newDriver(t, c, t.TempDir(), func(o *Options) { o.Network = netName })
	s := spec(t)
	h := start(t, d, s)
	if err := d.Destroy(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	removeNetworks(t, c, netName)
	healthy(t, start(t, d, s))
}
