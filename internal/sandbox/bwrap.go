package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Paths inside the sandbox.
const (
	// Workspace is where the agent's workspace appears, read-write; it is
	// also the commands' working directory and HOME.
	Workspace = "/workspace"
	// initPath is where the init binary (this program) is bind-mounted.
	initPath = "/run/agenthost/init"
	// proxySocket is where the egress proxy's socket is bind-mounted.
	proxySocket = "/run/agenthost/egress.sock"
	// proxyListen is the forwarder's address; the proxy variables point
	// at it.
	proxyListen = "127.0.0.1:3128"
	// uid and gid of the "agent" user inside.
	agentID = "1000"
)

// systemDirs are the top-level directories of system programs, mounted
// read-only; on merged-/usr systems they are symlinks into /usr and are
// recreated as such.
var systemDirs = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcFiles is the curated read-only part of /etc: certificates,
// alternatives, the dynamic linker's cache, time zone, name service
// configuration. passwd, group and hosts are generated.
var etcFiles = []string{
	"/etc/ssl", "/etc/ca-certificates", "/etc/ca-certificates.conf", "/etc/pki", "/etc/alternatives",
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/timezone",
	"/etc/nsswitch.conf", "/etc/services", "/etc/protocols", "/etc/mime.types",
}

var (
	passwdFile = "root:x:0:0:root:/root:/usr/sbin/nologin\n" +
		"agent:x:" + agentID + ":" + agentID + ":agent:" + Workspace + ":/bin/bash\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	groupFile = "root:x:0:\nagent:x:" + agentID + ":\nnogroup:x:65534:\n"
	hostsFile = "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
)

// baseEnv is the environment of every command, built from nothing.
var baseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=" + Workspace,
	"USER=agent",
	"LOGNAME=agent",
	"SHELL=/bin/bash",
	"LANG=C.UTF-8",
	"TMPDIR=/tmp",
	"TERM=dumb",
}

// proxyEnv points the usual proxy variables at the forwarder; local
// addresses inside the sandbox (a dev server the agent started) are
// reached directly.
var proxyEnv = []string{
	"HTTP_PROXY=http://" + proxyListen, "HTTPS_PROXY=http://" + proxyListen,
	"http_proxy=http://" + proxyListen, "https_proxy=http://" + proxyListen,
	"NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1",
}

// features are the options of a bubblewrap binary that older versions lack.
type features struct {
	disableUserns bool // --disable-userns (0.8)
	size          bool // --size for --tmpfs
}

var (
	featuresMu    sync.Mutex
	featuresCache = map[string]features{}
)

// bwrapFeatures reads bwrap's --help once per binary.
func bwrapFeatures(bwrap string) features {
	featuresMu.Lock()
	defer featuresMu.Unlock()
	if f, ok := featuresCache[bwrap]; ok {
		return f
	}
	out, _ := exec.Command(bwrap, "--help").CombinedOutput()
	f := features{disableUserns: bytes.Contains(out, []byte("--disable-userns")), size: bytes.Contains(out, []byte("--size"))}
	featuresCache[bwrap] = f
	return f
}

// namespaceArgs are the isolation flags shared by sandboxes and Probe.
func namespaceArgs(f features) []string {
	a := []string{
		"--unshare-user", "--uid", agentID, "--gid", agentID,
		"--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent", "--new-session", "--cap-drop", "ALL",
		"--hostname", "sandbox",
	}
	if f.disableUserns {
		// Seccomp refuses unshare and clone with namespace flags too;
		// this also keeps user namespaces out of reach of a filter gap.
		a = append(a, "--disable-userns")
	}
	return a
}

// bwrapArgs returns bwrap's arguments for a sandbox; dataFD are the
// descriptors (in the child) of passwd, group and hosts; own is the
// session's private directory on the host ("" for none).
func (m *Manager) bwrapArgs(dataFD [3]int, session, own string) []string {
	f := bwrapFeatures(m.bwrap)
	a := namespaceArgs(f)
	a = append(a, "--ro-bind", "/usr", "/usr")
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				a = append(a, "--symlink", target, d)
			}
		case fi.IsDir():
			a = append(a, "--ro-bind", d, d)
		}
	}
	for _, f := range etcFiles {
		a = append(a, "--ro-bind-try", f, f)
	}
	a = append(a,
		"--perms", "0644", "--ro-bind-data", itoa(uint64(dataFD[0])), "/etc/passwd",
		"--perms", "0644", "--ro-bind-data", itoa(uint64(dataFD[1])), "/etc/group",
		"--perms", "0644", "--ro-bind-data", itoa(uint64(dataFD[2])), "/etc/hosts",
		"--bind", m.workspace, Workspace,
	)
	for _, h := range m.hide {
		a = append(a, "--tmpfs", h, "--remount-ro", h)
	}
	if m.private != "" {
		// The top-level ancestor read-only (it cannot be renamed either:
		// it is a mount point), the private directory covered, and the
		// session's own part of it shown again.
		top, _, _ := strings.Cut(m.private, "/")
		if top != m.private {
			a = append(a, "--ro-bind", filepath.Join(m.workspace, top), path.Join(Workspace, top))
		}
		dir := path.Join(Workspace, m.private)
		a = append(a, "--tmpfs", dir)
		if own != "" {
			a = append(a, "--bind", own, path.Join(dir, session))
		}
		a = append(a, "--remount-ro", dir)
	}
	if f.size {
		a = append(a, "--size", itoa(uint64(m.cfg.DiskLimit)))
	}
	a = append(a, "--tmpfs", "/tmp",
		"--proc", "/proc",
		"--dev", "/dev",
		"--tmpfs", "/dev/shm",
		"--remount-ro", "/dev",
		"--ro-bind", m.binary, initPath,
	)
	if m.cfg.ProxySocket != "" {
		a = append(a, "--ro-bind", m.cfg.ProxySocket, proxySocket)
	}
	a = append(a, "--chdir", Workspace, "--remount-ro", "/", "--", initPath, InitCommand,
		"--nofile", itoa(m.cfg.NoFile), "--fsize", itoa(uint64(m.cfg.DiskLimit)))
	if m.cfg.ProxySocket != "" {
		a = append(a, "--proxy", proxySocket)
	}
	return a
}

// ErrUnavailable is wrapped by Probe's errors: this machine cannot make a
// sandbox.
var ErrUnavailable = errors.New("the tool sandbox is not available")

// Probe checks that bubblewrap is installed and can create the sandbox's
// namespaces here. Its error wraps ErrUnavailable and says what is missing
// and how to get it.
func Probe(ctx context.Context) error {
	return probe(ctx, "")
}

func probe(ctx context.Context, bwrap string) error {
	if bwrap == "" {
		p, err := exec.LookPath("bwrap")
		if err != nil {
			return fmt.Errorf("%w: bubblewrap (bwrap) is not installed; install it with `apt-get install bubblewrap` (Debian, Ubuntu), `dnf install bubblewrap` (Fedora) or `apk add bubblewrap` (Alpine)", ErrUnavailable)
		}
		bwrap = p
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	args := append(namespaceArgs(bwrapFeatures(bwrap)), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "true")
	cmd := exec.CommandContext(ctx, bwrap, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%w: %s cannot create the sandbox's namespaces (%s)%s", ErrUnavailable, bwrap, msg, namespaceHint())
	}
	return nil
}

// namespaceHint explains the usual reasons user namespaces are refused.
func namespaceHint() string {
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	var hints []string
	if read("/proc/sys/user/max_user_namespaces") == "0" {
		hints = append(hints, "user namespaces are disabled: `sysctl -w user.max_user_namespaces=15000`")
	}
	if read("/proc/sys/kernel/unprivileged_userns_clone") == "0" {
		hints = append(hints, "unprivileged user namespaces are disabled: `sysctl -w kernel.unprivileged_userns_clone=1`")
	}
	if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" {
		hints = append(hints, "AppArmor restricts unprivileged user namespaces: `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or give bwrap an AppArmor profile that allows userns")
	}
	if _, err := os.Stat("/.dockerenv"); err == nil {
		hints = append(hints, "inside a container the engine's seccomp profile and AppArmor must allow namespaces (the docker driver's runtime containers are started that way; see docs/docker.md)")
	}
	if len(hints) == 0 {
		return "; check that user, pid and network namespaces are enabled in this kernel"
	}
	return "; " + strings.Join(hints, "; ")
}

// envName is a portable environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseToolEnv reads AGENTHOST_TOOL_ENV: comma-separated names of the
// variables handed to tools. AGENTHOST_* names are the runtime's own and
// are refused, as are names that are not names.
func ParseToolEnv(list string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(list, ",") {
		n := strings.TrimSpace(raw)
		if n == "" {
			continue
		}
		if !envName.MatchString(n) {
			return nil, fmt.Errorf("AGENTHOST_TOOL_ENV: %q is not a variable name", n)
		}
		if strings.HasPrefix(strings.ToUpper(n), "AGENTHOST_") {
			return nil, fmt.Errorf("AGENTHOST_TOOL_ENV: %s: AGENTHOST_* variables belong to the runtime and are never handed to tools", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// Pass returns NAME=value for each of names that getenv finds non-empty.
func Pass(getenv func(string) string, names []string) []string {
	var out []string
	for _, n := range names {
		if v := getenv(n); v != "" {
			out = append(out, n+"="+v)
		}
	}
	return out
}

// itoa formats a number for bwrap's and the init's arguments.
func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// realDir resolves dir to an absolute path without symlinks.
// privateDir makes the private directory and the session's part of it on
// the host, and returns the latter ("" when there is no private directory
// or the session id cannot name a directory). Every directory on the way
// must be a plain directory in the workspace: a symlink is refused, so a
// command cannot redirect what a sandbox shows.
func (m *Manager) privateDir(session string) (string, error) {
	if m.private == "" {
		return "", nil
	}
	own := m.private
	if validSession(session) {
		own = path.Join(m.private, session)
	}
	root, err := os.OpenRoot(m.workspace)
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	defer root.Close()
	if err := root.MkdirAll(own, 0o755); err != nil {
		return "", fmt.Errorf("sandbox: the sessions' private directory %s: %w", m.private, err)
	}
	host := filepath.Join(m.workspace, filepath.FromSlash(own))
	if real, err := filepath.EvalSymlinks(host); err != nil || real != host {
		return "", fmt.Errorf("sandbox: the sessions' private directory %s is not a plain directory of the workspace (a symlink?); sessions cannot be kept apart", own)
	}
	if own == m.private {
		return "", nil
	}
	return host, nil
}

// validSession reports whether a session id can name a directory.
func validSession(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func realDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}
