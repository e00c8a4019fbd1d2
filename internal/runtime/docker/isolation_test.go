package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/runtime"
)

// baseImage returns the Debian base image's tag, building it when the
// engine lacks it (scripts/service-docker.sh builds it before the suite,
// so this is quick there). Without mmdebstrap the test is skipped, or
// fails under CI=true.
func baseImage(t *testing.T, c *client.Client) string {
	t.Helper()
	baseOnce.Lock()
	defer baseOnce.Unlock()
	if baseOnce.ref != "" {
		return baseOnce.ref
	}
	spec := BaseSpec{}
	if id, err := FindBase(ctx(t), c, spec); err != nil {
		t.Fatal(err)
	} else if id == "" {
		if _, err := exec.LookPath("mmdebstrap"); err != nil && os.Getenv("CI") != "true" {
			t.Skipf("no base image %s and no mmdebstrap to build it: run ./scripts/service-docker.sh", spec.Tag())
		}
		t.Logf("building the base image %s (minutes; scripts/service-docker.sh builds it ahead)", spec.Tag())
	}
	var progress strings.Builder
	spec.Progress = &progress
	ref, _, err := EnsureBase(context.Background(), c, spec)
	if err != nil {
		t.Fatalf("base image: %v\n%s", err, progress.String())
	}
	baseOnce.ref = ref
	return ref
}

var baseOnce struct {
	sync.Mutex
	ref string
}

// debianTestImage is the fake runtime on the Debian base: the container
// the driver makes, with the tools a coding agent gets.
const debianTestImage = "agenthost-runtimetest-debian:latest"

var debianOnce struct {
	sync.Mutex
	done bool
}

func ensureDebianTestImage(t *testing.T, c *client.Client) {
	t.Helper()
	base := baseImage(t, c)
	debianOnce.Lock()
	defer debianOnce.Unlock()
	if debianOnce.done {
		return
	}
	var progress strings.Builder
	if _, err := BuildImage(ctx(t), c, ImageSpec{
		Tag: debianTestImage, Base: base, Binary: fakeRuntimeBinary(t), BinaryName: "fakeruntime",
		Cmd: []string{"fakeruntime"}, Progress: &progress,
	}); err != nil {
		t.Fatalf("building %s: %v\n%s", debianTestImage, err, progress.String())
	}
	builtImage(debianTestImage)
	debianOnce.done = true
}

// execIn runs argv in the container as its user and returns the output
// (stdout and stderr) and exit code.
func execIn(t *testing.T, c *client.Client, containerID string, argv ...string) (string, int) {
	t.Helper()
	ex, err := c.ExecCreate(ctx(t), containerID, client.ExecCreateOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	att, err := c.ExecAttach(ctx(t), ex.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		t.Fatalf("exec %q: reading output: %v", argv, err)
	}
	in, err := c.ExecInspect(ctx(t), ex.ID, client.ExecInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), in.ExitCode
}

// TestIsolationInContainer checks, from inside a runtime container the
// driver started on the Debian base, what the agent loop and its tools
// get: a non-root uid with no capabilities, no_new_privs and a seccomp
// filter; bubblewrap able to build the tool sandbox (user, PID and
// network namespaces, a fresh /proc) as that uid; the tools a coding
// agent needs; the data directory on its own volume, outside the
// workspace; the open-files limit.
func TestIsolationInContainer(t *testing.T) {
	c := engine(t)
	ensureDebianTestImage(t, c)
	t.Parallel()
	d := newDriver(t, c, t.TempDir(), func(o *Options) {
		o.Image = debianTestImage
		o.Resources = Resources{NofileLimit: 2048}
	})
	s := spec(t)
	s.Command = nil // the image's CMD
	h := start(t, d, s)
	healthy(t, h)
	id := decodeState(h).Container

	for _, tc := range []struct {
		name string
		argv []string
		want string // a line of the output
	}{
		{"non-root uid", []string{"id", "-u"}, fmt.Sprint(UID)},
		{"no capabilities", []string{"grep", "^CapEff:", "/proc/self/status"}, "CapEff:\t0000000000000000"},
		{"no bounding capabilities", []string{"grep", "^CapBnd:", "/proc/self/status"}, "CapBnd:\t0000000000000000"},
		{"no_new_privs", []string{"grep", "^NoNewPrivs:", "/proc/self/status"}, "NoNewPrivs:\t1"},
		{"seccomp filter", []string{"grep", "^Seccomp:", "/proc/self/status"}, "Seccomp:\t2"},
		// bwrap --die-with-parent dies with its parent; under docker exec
		// that is runc, which exits once the process runs, so bwrap runs
		// under a shell that waits for it (as under the agent loop).
		{"bubblewrap sandbox", underShell(bwrapAll + " true"), ""},
		{"bubblewrap sees only its own processes", underShell(bwrapAll + ` bash -c 'for p in /proc/[0-9]*/comm; do c=$(cat $p 2>/dev/null); case $c in fakeruntime|docker-init) echo seen $c;; esac; done; echo done'`), "done"},
		{"bubblewrap uid inside", underShell("bwrap --unshare-all --die-with-parent --uid 1000 --gid 1000 --ro-bind / / --proc /proc --dev /dev id -u"), "1000"},
		{"bubblewrap network: loopback only", underShell(bwrapAll + ` bash -c 'echo ifs: $(tail -n +3 /proc/net/dev | cut -d: -f1)'`), "ifs: lo"},
		{"bash", []string{"bash", "-c", "echo ok"}, "ok"},
		{"git", []string{"git", "--version"}, ""},
		{"curl", []string{"curl", "--version"}, ""},
		{"python3", []string{"python3", "-c", "print('py ok')"}, "py ok"},
		{"node", []string{"node", "-e", "console.log('node ok')"}, "node ok"},
		{"npm", []string{"npm", "--version"}, ""},
		{"tools", []string{"bash", "-c", "for c in find grep sed tar gzip xz unzip diff patch ps less; do command -v $c >/dev/null || echo missing $c; done; echo done"}, "done"},
		{"CA certificates", []string{"test", "-s", CACertsPath}, ""},
		{"data directory", []string{"bash", "-c", "echo $AGENTHOST_DATA_DIR; stat -c '%u %a' " + DataDir + "; touch " + DataDir + "/probe && echo writable"}, "writable"},
		{"data directory is not in the workspace", []string{"bash", "-c", "test ! -e /workspace/.agenthost && mountpoint -q " + DataDir + " && mountpoint -q /workspace && echo separate"}, "separate"},
		{"workspace owned by the runtime's user", []string{"stat", "-c", "%u", Workspace}, fmt.Sprint(UID)},
		{"open files limit", []string{"bash", "-c", "ulimit -n"}, "2048"},
		{"/proc/sys not writable", []string{"bash", "-c", "(echo agenthost-probe > /proc/sys/kernel/hostname) 2>/dev/null && echo writable || echo refused"}, "refused"},
		{"/proc/sysrq-trigger not writable", []string{"bash", "-c", "(echo h > /proc/sysrq-trigger) 2>/dev/null && echo writable || echo refused"}, "refused"},
		{"read-only root", []string{"bash", "-c", "touch /usr/probe 2>/dev/null && echo writable || echo read-only"}, "read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := execIn(t, c, id, tc.argv...)
			if code != 0 {
				t.Fatalf("%q: exit %d\n%s", tc.argv, code, out)
			}
			if strings.Contains(out, "missing ") || strings.Contains(out, "seen ") {
				t.Errorf("%q: %s", tc.argv, out)
			}
			if tc.want != "" && !hasLine(out, tc.want) {
				t.Errorf("%q = %q, want a line %q", tc.argv, out, tc.want)
			}
		})
	}
	out, _ := execIn(t, c, id, "bash", "-c", "echo $AGENTHOST_DATA_DIR")
	if !hasLine(out, DataDir) {
		t.Errorf("AGENTHOST_DATA_DIR = %q, want %s", out, DataDir)
	}
}

// TestDataVolume: the runtime's data volume is kept across restarts and
// removed by Destroy with the workspace.
func TestDataVolume(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	t.Parallel()
	d := newDriver(t, c, t.TempDir())
	s := spec(t)
	h := start(t, d, s)
	in, err := c.ContainerInspect(ctx(t), decodeState(h).Container, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var data bool
	for _, m := range in.Container.Mounts {
		if m.Destination == DataDir && m.Name == DataVolumeName(s.ID) && m.RW {
			data = true
		}
		if m.Destination != Workspace && m.Destination != DataDir {
			t.Errorf("unexpected mount %s at %s", m.Name, m.Destination)
		}
	}
	if !data {
		t.Errorf("mounts = %+v, want volume %s at %s", in.Container.Mounts, DataVolumeName(s.ID), DataDir)
	}
	if err := d.Destroy(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{VolumeName(s.ID), DataVolumeName(s.ID)} {
		if _, err := c.VolumeInspect(ctx(t), v, client.VolumeInspectOptions{}); err == nil {
			t.Errorf("volume %s left after Destroy", v)
		}
	}
	// A listed handle (no state but the id) destroys both as well.
	h = start(t, d, s)
	if err := d.Destroy(ctx(t), &runtime.Handle{ID: s.ID, Driver: Name}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VolumeInspect(ctx(t), DataVolumeName(s.ID), client.VolumeInspectOptions{}); err == nil {
		t.Error("data volume left after Destroy of a bare handle")
	}
}

// bwrapAll is the sandbox the brief names: every namespace, a fresh /proc.
const bwrapAll = "bwrap --unshare-all --die-with-parent --ro-bind / / --proc /proc --dev /dev"

// underShell runs a command line under bash, which waits for it.
func underShell(cmdline string) []string {
	return []string{"bash", "-c", cmdline + "; exit $?"}
}

func hasLine(out, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}

// TestEngineAppArmor: the AppArmor option is added only where the engine
// confines containers with AppArmor.
func TestEngineAppArmor(t *testing.T) {
	for _, tc := range []struct {
		opts []string
		want bool
	}{
		{nil, false},
		{[]string{"name=seccomp,profile=default"}, false},
		{[]string{"name=apparmor", "name=seccomp,profile=default"}, true},
		{[]string{"name=seccomp,profile=default", "name=cgroupns"}, false},
		{[]string{"name=apparmorx"}, false},
	} {
		if got := engineHasAppArmor(tc.opts); got != tc.want {
			t.Errorf("engineHasAppArmor(%q) = %v, want %v", tc.opts, got, tc.want)
		}
	}
}

// TestNetworkReach checks what the runtimes' network lets a container
// reach on this machine: not a service on the host's loopback, not
// another runtime's published port (bound on the host's 127.0.0.1), not
// another runtime's container (inter-container traffic is off).
func TestNetworkReach(t *testing.T) {
	c := engine(t)
	ensureDebianTestImage(t, c)
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveCanary(ln)
	canary := ln.Addr().(*net.TCPAddr).Port
	// A service on all interfaces: reachable at the gateway, which
	// docs/docker.md states as a gap the tool sandbox covers.
	all, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	go serveCanary(all)
	open := all.Addr().(*net.TCPAddr).Port

	d := newDriver(t, c, t.TempDir(), func(o *Options) { o.Image = debianTestImage })
	a, b := spec(t), spec(t)
	a.Command, b.Command = nil, nil
	ha, hb := start(t, d, a), start(t, d, b)
	healthy(t, ha)
	healthy(t, hb)
	inB, err := c.ContainerInspect(ctx(t), decodeState(hb).Container, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep := inB.Container.NetworkSettings.Networks[d.opts.Network]
	if ep == nil || !ep.IPAddress.IsValid() || !ep.Gateway.IsValid() {
		t.Fatalf("runtime b's network endpoint: %+v", ep)
	}
	// The runtime answers on its published port from the host.
	resp, err := http.Get(hb.Endpoint + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, tc := range []struct{ name, url string }{
		{"the host's loopback", fmt.Sprintf("http://127.0.0.1:%d/", canary)},
		{"a loopback service at the gateway", fmt.Sprintf("http://%s:%d/", ep.Gateway, canary)},
		{"another runtime's published port at the gateway", fmt.Sprintf("http://%s:%d/health", ep.Gateway, b.Port)},
		{"another runtime's container", fmt.Sprintf("http://%s:%d/health", ep.IPAddress, b.Port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := execIn(t, c, decodeState(ha).Container, "curl", "-sS", "--max-time", "3", tc.url)
			if code == 0 {
				t.Errorf("from runtime a, %s answered: %s", tc.url, out)
			}
		})
	}
	out, code := execIn(t, c, decodeState(ha).Container, "curl", "-sS", "--max-time", "3", fmt.Sprintf("http://%s:%d/", ep.Gateway, open))
	if code != 0 || !strings.Contains(out, "host-canary") {
		t.Errorf("a host service on all interfaces, at the gateway: exit %d %q; docs/docker.md says it is reachable (update it)", code, out)
	}
}

// serveCanary answers every request with "host-canary" until ln closes.
func serveCanary(ln net.Listener) {
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "host-canary\n")
	}))
}

func TestExitResult(t *testing.T) {
	for _, tc := range []struct {
		code  int
		oom   bool
		limit int64
		want  string
		isOOM bool
	}{
		{0, false, 0, "", false},
		{7, false, 0, "", false},
		{137, true, 96 << 20, "docker: killed: memory limit 96 MiB reached", true},
		{137, true, 2 << 30, "docker: killed: memory limit 2 GiB reached", true},
		{137, false, 0, "docker: killed by signal 9", false},
		{143, false, 0, "docker: killed by signal 15", false},
	} {
		res := exitResult(tc.code, tc.oom, tc.limit)
		got := ""
		if res.Err != nil {
			got = res.Err.Error()
		}
		if res.ExitCode != tc.code || got != tc.want || errors.Is(res.Err, runtime.ErrMemoryLimit) != tc.isOOM {
			t.Errorf("exitResult(%d, %v, %d) = %d %q", tc.code, tc.oom, tc.limit, res.ExitCode, got)
		}
	}
}
