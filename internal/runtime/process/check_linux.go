//go:build linux

package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agenthost/agenthost/internal/runtime"
)

// ErrNotIsolated is wrapped by New's error when this machine cannot
// isolate runtimes; the error says what is missing and how to get it.
var ErrNotIsolated = errors.New("process: runtimes cannot be isolated on this machine")

// problem is one missing piece of the isolation, and how to get it.
type problem struct{ what, fix string }

// isolation is what New found the machine can do.
type isolation struct {
	ids     *identities // nil: runtimes run as the platform's user
	cgroups *cgroupBase // nil: no limits (insecure mode only)
	sandbox string      // AGENTHOST_SANDBOX
	// prlimit is util-linux's prlimit, run as a runtime's uid to cap its
	// open files where the platform lacks CAP_SYS_RESOURCE; "" otherwise.
	prlimit string
}

// setUp checks, in order, everything runtimes need to be isolated, and
// fails closed unless opts.InsecureNoSandbox: then it keeps what works and
// warns about the rest.
func (d *Driver) setUp(ctx context.Context) error {
	var problems []problem
	var err error
	iso := isolation{sandbox: SandboxBwrap}
	probeUID := -1
	if os.Geteuid() == 0 {
		if err := checkTraversable(d.root); err != nil {
			problems = append(problems, problem{err.Error(), ""})
		} else {
			r := d.opts.UIDs
			iso.ids = &identities{root: d.root, first: r.First, last: r.Last}
			probeUID = int(r.First)
			if !hasCapability(unix.CAP_SYS_RESOURCE) {
				if iso.prlimit, err = lookPathIn("prlimit", d.opts.Path); err != nil {
					problems = append(problems, problem{
						"the platform runs as root without CAP_SYS_RESOURCE, so it caps runtimes' open files with util-linux's prlimit, which is missing: " + err.Error(),
						"apt-get install util-linux, or give the platform CAP_SYS_RESOURCE",
					})
				}
			}
		}
	}
	if p := d.checkBwrap(ctx, probeUID); p != nil {
		problems = append(problems, *p)
	}
	cg, err := d.checkCgroups()
	if err != nil {
		fix := "run the platform as root, or in a cgroup delegated to its user: systemd-run --user --scope -p Delegate=yes agenthost platform ..."
		problems = append(problems, problem{"cgroups (for the runtimes' memory, CPU and process limits) are not usable: " + err.Error(), fix})
	} else {
		iso.cgroups = cg
	}
	if len(problems) > 0 {
		if !d.opts.InsecureNoSandbox {
			if iso.cgroups != nil {
				iso.cgroups.remove()
			}
			var b strings.Builder
			for _, p := range problems {
				b.WriteString("\n  - " + p.what)
				if p.fix != "" {
					b.WriteString(";\n    fix: " + p.fix)
				}
			}
			return fmt.Errorf("%w:%s\nor, for one trusted user on a development machine only, start anyway without the sandbox: agenthost platform --insecure-no-sandbox", ErrNotIsolated, b.String())
		}
		for _, p := range problems {
			d.log.Warn("INSECURE: runtimes are not isolated", "missing", p.what, "fix", p.fix)
		}
	}
	if d.opts.InsecureNoSandbox {
		iso.sandbox = SandboxNone
		d.log.Warn("INSECURE: --insecure-no-sandbox: the agents' tools run without a sandbox and can reach everything this host's runtime users can")
	}
	d.iso = iso
	return nil
}

// checkBwrap runs bubblewrap as a runtime would (as uid, or as the
// platform's user when uid < 0) and asks it for what the tool sandbox
// needs: user, pid and network namespaces and a /proc of its own.
func (d *Driver) checkBwrap(ctx context.Context, uid int) *problem {
	bwrap, err := lookPathIn(d.opts.Bwrap, d.opts.Path)
	if err != nil {
		return &problem{
			fmt.Sprintf("bubblewrap (%s), which sandboxes the agents' tools, is not installed: %v", d.opts.Bwrap, err),
			"apt-get install bubblewrap (or dnf install bubblewrap)",
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bwrap,
		"--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
		"--die-with-parent", "--new-session",
		"--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
		"--", "true")
	cmd.Env = []string{"PATH=" + d.opts.Path}
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	as := "the platform's user"
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
		as = "uid " + strconv.Itoa(uid)
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return &problem{
			fmt.Sprintf("bubblewrap (%s) cannot create user, pid and network namespaces with a /proc of their own as %s: %s", bwrap, as, msg),
			userNamespaceFix(),
		}
	}
	return nil
}

// userNamespaceFix says how to allow unprivileged user namespaces here.
func userNamespaceFix() string {
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	switch {
	case read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
		return "sysctl -w kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d to keep it)"
	case read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
		return "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile allowing userns for bwrap"
	case read("/proc/sys/user/max_user_namespaces") == "0":
		return "sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d to keep it)"
	}
	return "allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0; in a container, a seccomp profile that allows clone with CLONE_NEWUSER and an unmasked /proc, e.g. docker run --security-opt seccomp=unconfined --security-opt systempaths=unconfined)"
}

// hasCapability reports whether this process has capability c in effect.
func hasCapability(c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<uint(c)) != 0
		}
	}
	return false
}

// lookPathIn finds name on path (a PATH value), or checks it when it
// holds a slash.
func lookPathIn(name, path string) (string, error) {
	isExec := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
	}
	if strings.Contains(name, "/") {
		if isExec(name) {
			return name, nil
		}
		return "", fmt.Errorf("%s: no such executable", name)
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		if p := filepath.Join(dir, name); isExec(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found on PATH %s", path)
}

var checkSeq atomic.Int64

// checkCgroups finds where the runtimes' cgroups go and proves that the
// driver can make one there with limits, then removes it.
func (d *Driver) checkCgroups() (*cgroupBase, error) {
	base, err := findCgroups(d.opts.CgroupParent, "agenthost-"+d.rootHash)
	if err != nil {
		return nil, err
	}
	// A leading dot: no runtime id looks like this.
	st, err := base.create(fmt.Sprintf(".check-%d-%d", os.Getpid(), checkSeq.Add(1)), runtime.Resources{MemoryBytes: 64 << 20, NanoCPUs: 1e8, PidsLimit: 16})
	if err != nil {
		return nil, err
	}
	if err := st.destroy(); err != nil {
		return nil, err
	}
	return base, nil
}
