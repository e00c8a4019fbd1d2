// Package process is the runtime driver that runs each runtime as a child
// process of the platform: the embedded default, with nothing to install
// beyond bubblewrap.
//
// # What isolates a runtime
//
// A runtime is the agent loop (`agenthost serve --role coding`: our own
// code, holding the model keys and the control token); its tools (bash and
// everything it starts) are hostile, and the runtime runs each of them in
// a bubblewrap sandbox of its own (internal/sandbox). This driver is the
// layer around the runtime:
//
//   - Identity. When the platform runs as root, each runtime runs under a
//     uid and gid of its own, allocated from Options.UIDs (default
//     2000000-2999999) in order, recorded in <root>/.uids and in the
//     runtime's identity.json, kept across stop and start and never given
//     again under the same root, not even after Destroy. A runtime has no
//     supplementary groups and no capabilities. So a runtime cannot read
//     another runtime's files or its /proc/<pid>/environ, cannot read the
//     platform's files (the root and the platform's data directory are
//     0711: traversable, not listable; the master key and the database
//     0600), and cannot signal the platform or another runtime. Run by an
//     ordinary user, runtimes run as that user: the tool sandbox's user
//     namespaces keep tools apart, not this driver.
//   - Limits. Each runtime has a cgroup (v2, or v1's memory, pids and cpu
//     hierarchies) under the platform's own cgroup (or
//     Options.CgroupParent), with Spec.Resources' memory, CPU and process
//     limits (zero fields: Options.Resources, then DefaultResources), and
//     its open files capped, soft and hard (by prlimit(2); a root without
//     CAP_SYS_RESOURCE starts the runtime under util-linux's prlimit(1),
//     which lowers its own limit and execs the runtime). When the kernel
//     kills the runtime at its memory limit, its exit says so
//     (runtime.ErrMemoryLimit, "killed: memory limit 512 MiB reached"), and
//     so does the last line of its log that Inspect returns; the other
//     runtimes are unaffected.
//   - Fail closed. New checks that bubblewrap can make user, pid and
//     network namespaces with a /proc of their own as a runtime uid, that
//     cgroups can be made, and that runtime uids can reach the root, and
//     fails with ErrNotIsolated, saying what is missing and how to get it,
//     unless Options.InsecureNoSandbox: then it keeps what works, warns
//     about the rest, and runtimes get AGENTHOST_SANDBOX=none.
//
// # What a runtime gets
//
// Each runtime has a directory <root>/<id>/ (the platform's, 0711)
// holding:
//
//	workspace/      the runtime's files, its working directory and HOME; kept
//	                across stop and start, removed by Destroy
//	tmp/            its TMPDIR, emptied at every start
//	data/           its own state (AGENTHOST_DATA_DIR: the coding runtime's
//	                session database), outside the workspace so the agent's
//	                tools cannot read or rewrite it
//	runtime.log     stdout and stderr, capped (see Options.MaxLogBytes)
//	runtime.log.1   the previous MaxLogBytes of the log
//	state.json      the handle of the last run, for List and for Start's guard
//	identity.json   the runtime's uid and gid (as root)
//
// workspace/, tmp/ and data/ are the runtime's uid's, mode 0700; the rest
// is the platform's, 0600, so a runtime cannot rewrite the records the
// platform acts on. The runtime's executable is run from a copy in
// <root>/.bin (mode 0755, named by its content's hash), since the binary
// the platform was given may be where runtime uids cannot reach it.
//
// The environment is built from nothing, never inherited: PATH, HOME (the
// workspace), LANG, TMPDIR, then Spec.Env (which may override those four),
// then AGENTHOST_PORT, AGENTHOST_WORKSPACE, AGENTHOST_DATA_DIR,
// AGENTHOST_RUNTIME_ID and AGENTHOST_SANDBOX, which Spec.Env cannot
// override. No variable of the platform's own environment reaches a
// runtime, and with runtime uids no secret of another runtime's does.
//
// With Spec.InheritListener the driver binds 127.0.0.1:Spec.Port itself
// and the runtime inherits the listening socket as descriptor 3
// (AGENTHOST_LISTEN_FD=3): a request sent as soon as Start returns waits
// for the runtime to serve instead of being refused, and a port another
// process holds fails Start.
//
// # Process tree
//
// A runtime starts in a session of its own (setsid), so it is the leader of
// a process group and a session that hold everything it starts, including
// the process groups its bash tool makes for each command. Stop sends
// SIGTERM to the runtime's process group, waits for the runtime to exit up
// to the timeout, then sends SIGKILL; when the runtime has exited, whatever
// is left in its session and its cgroup is killed, and the cgroup removed:
// a process that left the session (setsid) does not leave the cgroup. A
// leftover cgroup of the same runtime (a platform that crashed) is emptied
// and made afresh at the next start. On cgroup v2 the runtime is born in
// its cgroup (CLONE_INTO_CGROUP); on v1 it is moved into it as soon as
// it has started.
//
// # Platform restarts
//
// Runtimes are deliberately not tied to the platform's life (no
// Pdeathsig, no pipes: output goes straight to the log file, so a runtime
// never dies of SIGPIPE when the platform is gone). After a restart the
// platform calls Recover with each persisted handle: the driver checks that
// the pid still names the same process (its start time in /proc/<pid>/stat
// and the kernel's boot id must match) and watches it through a pidfd, or
// by polling /proc where pidfds are unavailable. A re-attached runtime is
// not the platform's child, so its exit status cannot be known: Wait then
// reports ExitCode -1 and ErrExitUnknown.
//
// Nor is a runtime told the platform's pid (say in AGENTHOST_PARENT_PID) to
// watch: it would take every restart for the platform's end and quit,
// which is what Recover exists to avoid.
//
// When the platform is gone for good, its runtimes keep running until
// someone stops them; the next platform on the same root finds them with
// List and destroys those no agent owns. Under systemd, run the platform
// with KillMode=process (or mixed) so that restarting the service does not
// kill the runtimes; run it under an init (docker --init, tini) when it is
// PID 1 of a container, so that orphans are reaped.
package process

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/agenthost/agenthost/internal/runtime"
)

// Name is the driver's name, as it appears in handles.
const Name = "process"

// ErrExitUnknown is the ExitResult.Err of a runtime that ended after it was
// re-attached by Recover: only a process's parent learns its exit status.
var ErrExitUnknown = errors.New("process: exit status unknown (runtime was re-attached after a platform restart)")

// ErrStillRunning is returned by Start for a runtime whose process from an
// earlier platform process still runs: it must be recovered or destroyed
// first, never started twice.
var ErrStillRunning = errors.New("process: runtime is still running")

// Options configures a Driver. Only Root is required.
type Options struct {
	// Root holds one directory per runtime. It must be the same across
	// platform restarts for Recover and List to find anything.
	Root string
	// MaxLogBytes caps runtime.log: past it, the log's last MaxLogBytes
	// move to runtime.log.1 and runtime.log starts again, so at most about
	// twice this much is on disk per runtime. Default 1 MiB.
	MaxLogBytes int64
	// LogCheckInterval is how often running runtimes' logs are checked
	// against MaxLogBytes; a runtime that writes faster than
	// MaxLogBytes per interval overshoots until the next check. Default 5s.
	LogCheckInterval time.Duration
	// LogLines is how many of the last log lines Inspect returns. Default 50.
	LogLines int
	// PollInterval is how often a re-attached runtime is checked for exit
	// where the kernel offers no pidfd (before Linux 5.3, or a seccomp
	// profile that forbids pidfd_open). Default 500ms.
	PollInterval time.Duration
	// Path is the PATH runtimes get. Default: the platform's own PATH — a
	// list of directories, not a secret, and what lets a coding agent's bash
	// tool find the operator's tools — or a standard one when unset.
	Path string
	// UIDs is the range runtime uids and gids are allocated from when the
	// platform runs as root: one per runtime, monotonically, never reused
	// under this Root. Its first uid is kept for New's sandbox check. Give
	// each platform on a host its own range. Default DefaultUIDs. Ignored
	// when the platform is not root: runtimes then run as its user.
	UIDs UIDRange
	// Resources are the limits of runtimes whose Spec.Resources leave a
	// field zero; zero fields here take DefaultResources.
	Resources runtime.Resources
	// CgroupParent is the cgroup (a path in the cgroup hierarchy, such as
	// /agenthost) under which runtimes' cgroups are made. Default: the
	// platform's own cgroup.
	CgroupParent string
	// InsecureNoSandbox starts the driver even where runtimes cannot be
	// isolated (no bubblewrap, no user namespaces, no cgroups, a root
	// runtime users cannot reach): whatever is missing is skipped with a
	// warning, and runtimes get AGENTHOST_SANDBOX=none, so their tools run
	// unsandboxed. For one trusted user on a development machine only.
	InsecureNoSandbox bool
	// Bwrap is the bubblewrap executable New checks. Default: "bwrap" on
	// Path.
	Bwrap string
	// Logger receives the driver's own events. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for StartedAt and ExitedAt. Default time.Now.
	Now func() time.Time
}

// UIDRange is an inclusive range of uids.
type UIDRange struct{ First, Last uint32 }

// DefaultUIDs is where runtime uids come from by default: far above the
// uids of people and system services, and of the subordinate ranges that
// useradd hands out (100000 onwards, 65536 each).
var DefaultUIDs = UIDRange{First: 2000000, Last: 2999999}

// ParseUIDRange parses "FIRST-LAST".
func ParseUIDRange(s string) (UIDRange, error) {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	last, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	if !ok || err1 != nil || err2 != nil || first < 1000 || last < first+1 || last >= 1<<32-1 {
		return UIDRange{}, fmt.Errorf("uid range %q: want FIRST-LAST with 1000 <= FIRST < LAST < 4294967295", s)
	}
	return UIDRange{First: uint32(first), Last: uint32(last)}, nil
}

// String formats r as ParseUIDRange reads it.
func (r UIDRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// DefaultResources are the limits of a runtime whose spec and options
// leave them zero: 1 GiB of memory, one CPU, 512 processes and threads,
// 1024 open files per process.
var DefaultResources = runtime.Resources{MemoryBytes: 1 << 30, NanoCPUs: 1e9, PidsLimit: 512, NofileLimit: 1024}

// orDefault fills r's zero fields from def.
func orDefault(r, def runtime.Resources) runtime.Resources {
	if r.MemoryBytes <= 0 {
		r.MemoryBytes = def.MemoryBytes
	}
	if r.NanoCPUs <= 0 {
		r.NanoCPUs = def.NanoCPUs
	}
	if r.PidsLimit <= 0 {
		r.PidsLimit = def.PidsLimit
	}
	if r.NofileLimit <= 0 {
		r.NofileLimit = def.NofileLimit
	}
	return r
}

// Sandbox values of AGENTHOST_SANDBOX, which tells a runtime how to run
// its tools.
const (
	SandboxBwrap = "bwrap"
	SandboxNone  = "none"
)

const (
	defaultMaxLogBytes      = 1 << 20
	defaultLogCheckInterval = 5 * time.Second
	defaultLogLines         = 50
	defaultPollInterval     = 500 * time.Millisecond
	standardPath            = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)
