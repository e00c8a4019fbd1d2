//go:build linux

package process

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agenthost/agenthost/internal/runtime"
)

// Driver runs runtimes as child processes. It is safe for concurrent use.
type Driver struct {
	opts     Options
	root     string
	log      *slog.Logger
	bootID   string
	usePidfd bool // false: watch re-attached runtimes by polling /proc
	rootHash string
	iso      isolation
	exes     *executables

	mu     sync.Mutex
	insts  map[string]*instance // by runtime id: the current or last run
	locks  runtime.IDLocks      // serialize Start, Destroy and re-attachment of one runtime
	closed chan struct{}
	wg     sync.WaitGroup // rotateLoop and watchRecovered goroutines
}

var (
	_ runtime.Driver = (*Driver)(nil)
	_ runtime.Lister = (*Driver)(nil)
)

var errClosed = errors.New("process: driver closed")

// New returns a driver keeping its runtimes under opts.Root, which it
// creates if needed. It first checks that this machine can isolate
// runtimes (see the package documentation) and fails, wrapping
// ErrNotIsolated and saying what is missing and how to get it, when it
// cannot, unless opts.InsecureNoSandbox.
func New(opts Options) (*Driver, error) {
	if opts.Root == "" {
		return nil, errors.New("process: Options.Root is required")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("process: root: %w", err)
	}
	// Directories made on the way are traversable by the runtime users
	// that will need to pass them (a new data directory included).
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("process: root: %w", err)
	}
	if opts.MaxLogBytes <= 0 {
		opts.MaxLogBytes = defaultMaxLogBytes
	}
	if opts.LogCheckInterval <= 0 {
		opts.LogCheckInterval = defaultLogCheckInterval
	}
	if opts.LogLines <= 0 {
		opts.LogLines = defaultLogLines
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	if opts.Path == "" {
		opts.Path = os.Getenv("PATH")
	}
	if opts.Path == "" {
		opts.Path = standardPath
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UIDs == (UIDRange{}) {
		opts.UIDs = DefaultUIDs
	}
	if opts.UIDs.Last <= opts.UIDs.First {
		return nil, fmt.Errorf("process: uid range %s: want at least two uids", opts.UIDs)
	}
	if opts.Bwrap == "" {
		opts.Bwrap = "bwrap"
	}
	opts.Resources = orDefault(opts.Resources, DefaultResources)
	sum := sha256.Sum256([]byte(root))
	d := &Driver{
		opts:     opts,
		root:     root,
		log:      opts.Logger.With("driver", Name),
		bootID:   readBootID(),
		usePidfd: true,
		rootHash: hex.EncodeToString(sum[:6]),
		exes:     &executables{dir: filepath.Join(root, binName), known: map[fileKey]string{}},
		insts:    map[string]*instance{},
		closed:   make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.setUp(ctx); err != nil {
		return nil, err
	}
	if d.iso.ids != nil {
		// Runtime users traverse the root to their own directory; they
		// cannot list it.
		if err := os.Chmod(root, 0o711); err != nil {
			return nil, fmt.Errorf("process: root: %w", err)
		}
		d.exes.prune(d.exesInUse(), d.now())
	}
	d.log.Info("process driver ready", "root", root, "sandbox", d.iso.sandbox,
		"runtime_uids", d.iso.ids != nil, "cgroups", d.iso.cgroups != nil)
	d.wg.Add(1)
	go d.rotateLoop()
	return d, nil
}

// Name returns "process".
func (d *Driver) Name() string { return Name }

// Close stops the driver's background work: log rotation and watching
// re-attached runtimes. Runtimes keep running, so that the next platform
// process can Recover them; stop them first when that is not wanted. The
// driver must not be used after Close.
func (d *Driver) Close() error {
	d.mu.Lock()
	select {
	case <-d.closed:
	default:
		close(d.closed)
	}
	d.mu.Unlock()
	d.wg.Wait()
	if d.iso.cgroups != nil {
		d.iso.cgroups.remove() // only if no runtime's cgroup is left
	}
	return nil
}

// Sandbox is what runtimes get in AGENTHOST_SANDBOX: SandboxBwrap, or
// SandboxNone under Options.InsecureNoSandbox.
func (d *Driver) Sandbox() string { return d.iso.sandbox }

// exesInUse lists the executables the recorded runs use.
func (d *Driver) exesInUse() map[string]bool {
	used := map[string]bool{}
	ents, _ := os.ReadDir(d.root)
	for _, e := range ents {
		if h, err := readHandleFile(d.dir(e.Name())); err == nil {
			if st, err := decodeState(h); err == nil && st.Exe != "" {
				used[st.Exe] = true
			}
		}
	}
	return used
}

func (d *Driver) now() time.Time           { return d.opts.Now() }
func (d *Driver) dir(id string) string     { return filepath.Join(d.root, id) }
func (d *Driver) logPath(id string) string { return filepath.Join(d.root, id, logName) }

// Start launches spec's runtime in <root>/<id>/ (see the package
// documentation for the layout and environment).
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (*runtime.Handle, error) {
	if err := validate(spec); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("process: start %s: %w", spec.ID, err)
	}
	path, err := exec.LookPath(spec.Command[0])
	if err == nil {
		path, err = filepath.Abs(path)
	}
	if err != nil {
		return nil, fmt.Errorf("process: start %s: %w", spec.ID, err)
	}
	unlock := d.locks.Lock(spec.ID)
	defer unlock()
	if d.isClosed() {
		return nil, errClosed
	}
	if err := d.checkNotRunning(spec.ID); err != nil {
		return nil, err
	}

	dir := d.dir(spec.ID)
	ws, tmp, data := filepath.Join(dir, "workspace"), filepath.Join(dir, "tmp"), filepath.Join(dir, "data")
	var ident *identity
	if d.iso.ids != nil {
		// The runtime's directory stays the platform's (its state and log
		// are the platform's records); what is inside it is the runtime's.
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("process: start %s: %w", spec.ID, err)
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			return nil, fmt.Errorf("process: start %s: %w", spec.ID, err)
		}
		id, err := d.iso.ids.of(spec.ID)
		if err != nil {
			return nil, fmt.Errorf("process: start %s: %w", spec.ID, err)
		}
		ident = &id
		if path, err = d.exes.copyOf(path); err != nil {
			return nil, fmt.Errorf("process: start %s: %w", spec.ID, err)
		}
	}
	if err := d.makeDirs(ident, ws, data, tmp); err != nil {
		return nil, fmt.Errorf("process: start %s: %w", spec.ID, err)
	}
	res := orDefault(spec.Resources, d.opts.Resources)
	var cg *cgroupState
	if d.iso.cgroups != nil {
		if cg, err = d.iso.cgroups.create(spec.ID, res); err != nil {
			return nil, fmt.Errorf("process: start %s: cgroup: %w", spec.ID, err)
		}
	}
	if err := rotateLog(d.logPath(spec.ID), d.opts.MaxLogBytes); err != nil {
		d.log.Warn("log rotation failed", "runtime", spec.ID, "err", err)
	}
	logf, err := os.OpenFile(d.logPath(spec.ID), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		d.dropCgroup(spec.ID, cg)
		return nil, fmt.Errorf("process: start %s: log: %w", spec.ID, err)
	}
	// The driver binds the runtime's port and hands the listening socket
	// over as fd 3 (AGENTHOST_LISTEN_FD): the platform's first /health
	// then waits in the socket's backlog until the runtime serves,
	// instead of being refused and polled again; and a port another
	// process holds fails here, before anything starts.
	var extra []*os.File
	if spec.InheritListener {
		lnf, err := listenFile(spec.Port)
		if err != nil {
			logf.Close()
			d.dropCgroup(spec.ID, cg)
			return nil, fmt.Errorf("process: start %s: %w", spec.ID, err)
		}
		defer lnf.Close() // the child has its own copy
		extra = append(extra, lnf)
	}
	startedAt := d.now()
	fmt.Fprintf(logf, "agenthost: starting runtime %s at %s\n", spec.ID, startedAt.UTC().Format(time.RFC3339))

	// The log file itself is the child's stdout and stderr: no pipe that
	// would break (and kill the runtime with SIGPIPE) when the platform
	// goes away, and no goroutine copying output.
	cmd := &exec.Cmd{
		Path:        path,
		Args:        spec.Command,
		Env:         d.environ(spec, ws, tmp, data),
		Dir:         ws,
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  extra,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if ident != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: ident.UID, Gid: ident.GID, Groups: []uint32{}}
	}
	// A root without CAP_SYS_RESOURCE may not set another user's limits;
	// the runtime's user may lower its own. So the runtime starts under
	// util-linux's prlimit, which lowers its open-files limit, soft and
	// hard, and execs the runtime: capped before its first instruction,
	// and no second process to start and wait for.
	nofileSet := false
	if ident != nil && d.iso.prlimit != "" && res.NofileLimit > 0 {
		v := strconv.FormatInt(res.NofileLimit, 10)
		cmd.Path = d.iso.prlimit
		cmd.Args = append([]string{d.iso.prlimit, "--nofile=" + v + ":" + v, "--", path}, spec.Command[1:]...)
		nofileSet = true
	}
	var cgdir *os.File
	if cg != nil && cg.V2 {
		// Born in its cgroup (clone3 CLONE_INTO_CGROUP): not one fork
		// escapes the limits.
		if cgdir, err = os.Open(cg.Dirs[0]); err != nil {
			logf.Close()
			d.dropCgroup(spec.ID, cg)
			return nil, fmt.Errorf("process: start %s: cgroup: %w", spec.ID, err)
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(cgdir.Fd())
	}
	err = startCmd(cmd)
	logf.Close()
	if cgdir != nil {
		cgdir.Close()
	}
	if err != nil {
		d.dropCgroup(spec.ID, cg)
		return nil, fmt.Errorf("process: start %s: %w", spec.ID, err)
	}
	pid := cmd.Process.Pid
	// Our unreaped child: its stat is readable even if it already exited.
	ps, err := readStat(pid)
	if err == nil && ps.session != pid {
		err = fmt.Errorf("session %d, want %d", ps.session, pid)
	}
	if err == nil {
		err = d.limitChild(pid, cg, res, nofileSet)
	}
	if err != nil {
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
		d.dropCgroup(spec.ID, cg)
		return nil, fmt.Errorf("process: start %s: %w", spec.ID, err)
	}
	st := state{PID: pid, PGID: pid, SID: pid, StartTicks: ps.startTicks, BootID: d.bootID, Port: spec.Port, StartedAt: startedAt, Cgroup: cg, Exe: path}
	if ident != nil {
		st.UID = ident.UID
	}
	raw, err := json.Marshal(st)
	if err != nil {
		panic(err) // plain struct
	}
	h := &runtime.Handle{ID: spec.ID, Driver: Name, Endpoint: "http://127.0.0.1:" + strconv.Itoa(spec.Port), State: raw}
	in := newInstance(spec.ID, dir, st, false, nil)
	d.mu.Lock()
	d.insts[spec.ID] = in
	d.mu.Unlock()
	go d.watchChild(in, cmd)
	if err := writeHandleFile(dir, h); err != nil {
		d.log.Warn("cannot record runtime state; List will not see its pid", "runtime", spec.ID, "err", err)
	}
	d.log.Info("runtime started", "runtime", spec.ID, "pid", pid, "port", spec.Port)
	return h, nil
}

// checkNotRunning refuses to start a second run of a runtime over the same
// workspace and port, whether this driver started the first one or an
// earlier platform process did and nobody recovered it.
func (d *Driver) checkNotRunning(id string) error {
	d.mu.Lock()
	in := d.insts[id]
	d.mu.Unlock()
	if in != nil && !in.hasExited() {
		return fmt.Errorf("process: runtime %s is already running (pid %d)", id, in.st.PID)
	}
	prev, err := readHandleFile(d.dir(id))
	if err != nil {
		return nil
	}
	st, err := decodeState(prev)
	if err != nil || (in != nil && in.st.sameRun(st)) {
		return nil
	}
	f, err := d.verify(st)
	if err != nil {
		return nil
	}
	if f != nil {
		f.Close()
	}
	return fmt.Errorf("%w: runtime %s (pid %d) from an earlier platform process; recover or destroy it", ErrStillRunning, id, st.PID)
}

// startCmd starts cmd, retrying while its executable is busy: a copy just
// written to <root>/.bin is ETXTBSY for as long as a child forked
// meanwhile elsewhere in the process holds the write descriptor, which it
// does until its own exec (golang.org/issue/22315).
func startCmd(cmd *exec.Cmd) error {
	for i := 0; ; i++ {
		c := *cmd
		err := c.Start()
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || i == 50 {
			*cmd = c
			return err
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
}

// makeDirs makes the runtime's directories: its own (ident's, mode 0700)
// when runtimes have their own uids. tmp starts empty.
func (d *Driver) makeDirs(ident *identity, ws, data, tmp string) error {
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("tmp: %w", err)
	}
	for _, dir := range []string{ws, data, tmp} {
		var err error
		if ident != nil {
			err = ownDir(dir, *ident)
		} else {
			err = os.MkdirAll(dir, 0o700)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(dir), err)
		}
	}
	return nil
}

// limitChild puts a just started runtime under its limits: into its
// cgroup (cgroup v1: the runtime has not started anything yet, it is
// still starting), and, unless it started under prlimit (nofileSet), its
// open files capped, soft and hard, so neither it nor its children can
// raise them.
func (d *Driver) limitChild(pid int, cg *cgroupState, res runtime.Resources, nofileSet bool) error {
	if cg != nil && !cg.V2 {
		if err := cg.add(pid); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
	}
	if res.NofileLimit <= 0 || nofileSet {
		return nil
	}
	lim := unix.Rlimit{Cur: uint64(res.NofileLimit), Max: uint64(res.NofileLimit)}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		return fmt.Errorf("prlimit nofile: %w", err)
	}
	return nil
}

// dropCgroup removes the cgroup of a start that failed.
func (d *Driver) dropCgroup(id string, cg *cgroupState) {
	if cg == nil {
		return
	}
	if err := cg.destroy(); err != nil {
		d.log.Warn("cannot remove a runtime's cgroup", "runtime", id, "err", err)
	}
}

// environ builds the runtime's environment from nothing.
func (d *Driver) environ(spec runtime.Spec, ws, tmp, data string) []string {
	env := map[string]string{"PATH": d.opts.Path, "HOME": ws, "LANG": "C.UTF-8", "TMPDIR": tmp}
	maps.Copy(env, spec.Env)
	env["AGENTHOST_PORT"] = strconv.Itoa(spec.Port)
	env["AGENTHOST_WORKSPACE"] = ws
	env["AGENTHOST_DATA_DIR"] = data
	env["AGENTHOST_RUNTIME_ID"] = spec.ID
	if spec.InheritListener {
		env["AGENTHOST_LISTEN_FD"] = strconv.Itoa(listenFD)
	} else {
		delete(env, "AGENTHOST_LISTEN_FD")
	}
	env["AGENTHOST_SANDBOX"] = d.iso.sandbox
	if d.iso.sandbox == SandboxBwrap {
		// New checked bwrap as a runtime user: the runtime need not probe
		// again on its way to /health.
		env["AGENTHOST_SANDBOX_CHECKED"] = "1"
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// Wait blocks until the run named by h ends. A run re-attached after a
// platform restart ends with ExitCode -1 and ErrExitUnknown.
func (d *Driver) Wait(ctx context.Context, h *runtime.Handle) (runtime.ExitResult, error) {
	in, err := d.get(h)
	if err != nil {
		return runtime.ExitResult{}, err
	}
	select {
	case <-in.done:
		res, _ := in.exit()
		return res, nil
	case <-ctx.Done():
		return runtime.ExitResult{}, fmt.Errorf("process: wait for %s: %w", h.ID, ctx.Err())
	}
}

// Stop sends SIGTERM to the runtime's process group, then SIGKILL to its
// session after timeout, or at once when ctx ends first.
func (d *Driver) Stop(ctx context.Context, h *runtime.Handle, timeout time.Duration) error {
	in, err := d.get(h)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return d.stop(ctx, in, timeout)
}

func (d *Driver) stop(ctx context.Context, in *instance, timeout time.Duration) error {
	if timeout > 0 && !in.hasExited() {
		if err := in.signal(syscall.SIGTERM); err != nil {
			return err
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-in.done:
			return nil
		case <-t.C:
			d.log.Info("runtime still running after SIGTERM; killing it", "runtime", in.id, "timeout", timeout)
		case <-ctx.Done():
		}
	}
	if err := in.kill(); err != nil {
		return err
	}
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("process: stop %s: %w", in.id, ctx.Err())
	}
}

// Destroy kills the runtime (no grace: its files are going away) and
// removes its directory. It also kills a run recorded in the directory that
// h does not name, so nothing outlives the directory.
func (d *Driver) Destroy(ctx context.Context, h *runtime.Handle) error {
	if err := checkHandle(h); err != nil {
		return err
	}
	unlock := d.locks.Lock(h.ID)
	defer unlock()
	var runs []*instance
	d.mu.Lock()
	if in := d.insts[h.ID]; in != nil {
		runs = append(runs, in)
	}
	d.mu.Unlock()
	handles := []*runtime.Handle{h}
	if recorded, err := readHandleFile(d.dir(h.ID)); err == nil {
		handles = append(handles, recorded)
	}
	for _, hh := range handles {
		if st, err := decodeState(hh); err == nil {
			if in, err := d.getLocked(h.ID, st); err == nil {
				runs = append(runs, in)
			}
		}
	}
	for _, in := range runs {
		if err := d.stop(ctx, in, 0); err != nil {
			return fmt.Errorf("process: destroy %s: %w", h.ID, err)
		}
	}
	// The cgroups of the runs recorded, and where this driver would put
	// one: nothing of the runtime's is left running.
	var cgs []*cgroupState
	for _, hh := range handles {
		if st, err := decodeState(hh); err == nil && st.Cgroup != nil {
			cgs = append(cgs, st.Cgroup)
		}
	}
	if b := d.iso.cgroups; b != nil {
		cgs = append(cgs, b.of(h.ID))
	}
	for _, cg := range cgs {
		if err := cg.destroy(); err != nil {
			return fmt.Errorf("process: destroy %s: %w", h.ID, err)
		}
	}
	if err := os.RemoveAll(d.dir(h.ID)); err != nil {
		return fmt.Errorf("process: destroy %s: %w", h.ID, err)
	}
	d.mu.Lock()
	delete(d.insts, h.ID)
	d.mu.Unlock()
	d.log.Info("runtime destroyed", "runtime", h.ID)
	return nil
}

// Inspect reports the run named by h, with the last lines of its log. A
// run the driver cannot find is StateUnknown, with whatever log is left.
func (d *Driver) Inspect(ctx context.Context, h *runtime.Handle) (runtime.Status, error) {
	in, err := d.get(h)
	if errors.Is(err, runtime.ErrNotFound) {
		return runtime.Status{State: runtime.StateUnknown, Logs: tailLog(d.logPath(h.ID), d.opts.LogLines)}, nil
	}
	if err != nil {
		return runtime.Status{}, err
	}
	s := runtime.Status{State: runtime.StateRunning, StartedAt: in.st.StartedAt}
	if in.hasExited() {
		res, at := in.exit()
		s.State, s.ExitCode, s.ExitedAt = runtime.StateExited, res.ExitCode, at
	}
	s.Logs = tailLog(d.logPath(h.ID), d.opts.LogLines)
	return s, nil
}

// Recover re-attaches to a run started by an earlier platform process,
// after checking that its pid still names the same process.
func (d *Driver) Recover(ctx context.Context, h *runtime.Handle) error {
	_, err := d.get(h)
	return err
}

// List returns the handle of the last run of every runtime under the root,
// running or not; a directory without a readable state.json (a crash
// during Start) yields a handle with only ID and Driver, which Destroy
// accepts.
func (d *Driver) List(ctx context.Context) ([]*runtime.Handle, error) {
	ents, err := os.ReadDir(d.root)
	if err != nil {
		return nil, fmt.Errorf("process: list: %w", err)
	}
	var hs []*runtime.Handle
	for _, e := range ents {
		if !e.IsDir() || validID(e.Name()) != nil {
			continue
		}
		h, err := readHandleFile(d.dir(e.Name()))
		if err != nil || h.ID != e.Name() {
			h = &runtime.Handle{ID: e.Name(), Driver: Name}
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// get returns the instance for the run named by h, re-attaching to it when
// this driver does not know it yet.
func (d *Driver) get(h *runtime.Handle) (*instance, error) {
	if err := checkHandle(h); err != nil {
		return nil, err
	}
	st, err := decodeState(h)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	in := d.insts[h.ID]
	d.mu.Unlock()
	if in != nil && in.st.sameRun(st) {
		return in, nil
	}
	unlock := d.locks.Lock(h.ID)
	defer unlock()
	return d.getLocked(h.ID, st)
}

// getLocked is get with the runtime's id lock held.
func (d *Driver) getLocked(id string, st state) (*instance, error) {
	d.mu.Lock()
	in := d.insts[id]
	d.mu.Unlock()
	if in != nil && in.st.sameRun(st) {
		return in, nil
	}
	if in != nil && !in.hasExited() {
		return nil, fmt.Errorf("process: runtime %s: handle of an earlier run (pid %d): %w", id, st.PID, runtime.ErrNotFound)
	}
	f, err := d.verify(st)
	if err != nil {
		return nil, fmt.Errorf("process: runtime %s: %w", id, err)
	}
	in = newInstance(id, d.dir(id), st, true, f)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.isClosedLocked() {
		if f != nil {
			f.Close()
		}
		return nil, errClosed
	}
	d.insts[id] = in
	d.wg.Add(1)
	go d.watchRecovered(in)
	d.log.Info("runtime re-attached", "runtime", id, "pid", st.PID, "pidfd", f != nil)
	return in, nil
}

// verify checks that st's process still runs and is the same process, and
// opens a pidfd on it when the kernel allows.
func (d *Driver) verify(st state) (*os.File, error) {
	if st.BootID != "" && d.bootID != "" && st.BootID != d.bootID {
		return nil, fmt.Errorf("pid %d was started before the host rebooted: %w", st.PID, runtime.ErrNotFound)
	}
	var f *os.File
	if d.usePidfd {
		pf, err := openPidfd(st.PID)
		if errors.Is(err, syscall.ESRCH) {
			return nil, fmt.Errorf("pid %d is gone: %w", st.PID, runtime.ErrNotFound)
		}
		f = pf // nil on ENOSYS, EPERM...: fall back to /proc
	}
	// Opening the pidfd before reading stat closes the race: if stat still
	// shows our start time, the pidfd names our process.
	ps, err := readStat(st.PID)
	if err != nil || ps.startTicks != st.StartTicks || ps.session != st.SID || ps.state == 'Z' {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("pid %d is gone or now another process: %w", st.PID, runtime.ErrNotFound)
	}
	return f, nil
}

func (d *Driver) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.isClosedLocked()
}

func (d *Driver) isClosedLocked() bool {
	select {
	case <-d.closed:
		return true
	default:
		return false
	}
}

// rotateLoop keeps running runtimes' logs under MaxLogBytes.
func (d *Driver) rotateLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.opts.LogCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-d.closed:
			return
		case <-t.C:
		}
		d.mu.Lock()
		var live []*instance
		for _, in := range d.insts {
			if !in.hasExited() {
				live = append(live, in)
			}
		}
		d.mu.Unlock()
		for _, in := range live {
			if err := rotateLog(d.logPath(in.id), d.opts.MaxLogBytes); err != nil && !errors.Is(err, os.ErrNotExist) {
				d.log.Warn("log rotation failed", "runtime", in.id, "err", err)
			}
		}
	}
}

// listenFD is where a runtime finds its listening socket: the first of
// exec.Cmd.ExtraFiles.
const listenFD = 3

// listenFile binds 127.0.0.1:port and returns the listening socket as a
// file for the runtime to inherit.
func listenFile(port int) (*os.File, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("binding the runtime's port: %w", err)
	}
	defer ln.Close()
	return ln.(*net.TCPListener).File()
}
