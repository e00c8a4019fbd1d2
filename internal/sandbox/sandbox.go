// Package sandbox runs the coding agent's shell commands inside
// bubblewrap, one sandbox per session, out of reach of the agent loop that
// starts them.
//
// A sandbox sees the system's programs read-only (/usr and the merged-/usr
// links, a curated read-only part of /etc with generated passwd, group and
// hosts), the workspace read-write at /workspace (its working directory
// and HOME), a private /tmp and /dev/shm, its own /proc and a minimal
// /dev; nothing else of the host: not the runtime's data directory or
// database, not other workspaces, not the operator's home. It has its own
// user (uid 1000 "agent", no capabilities, no_new_privs, no further user
// namespaces), pid, network, IPC, UTS and (where possible) cgroup
// namespaces. Its only network is its own loopback: a forwarder on
// 127.0.0.1:3128, named by the proxy variables, relays to the egress proxy
// of the agent loop (internal/egress), which applies the egress policy.
// Commands get an environment built from nothing plus the variables the
// operator names in AGENTHOST_TOOL_ENV.
//
// Inside, the first process is this program's init (InitCommand), which
// sets RLIMIT_NOFILE, RLIMIT_FSIZE (the workspace's disk limit) and
// RLIMIT_CORE 0, raises its oom_score_adj, installs a seccomp filter
// compiled from Docker's default profile on all its threads, starts the
// forwarder, and then runs the commands the Manager sends it over a
// socket pair, each in its own process group with its output on a pipe
// passed along. The sandbox outlives a command, so a server started in the
// background is still there for the session's next command; it ends when
// the session has been idle for Config.IdleTimeout, when the runtime closes
// it, or when the agent loop exits. Hostile commands can kill the init;
// the command that was running then fails saying so, and the next one
// starts a fresh sandbox.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Defaults of Config.
const (
	DefaultDiskLimit   = 10 << 30
	DefaultNoFile      = 1024
	DefaultIdleTimeout = 15 * time.Minute
)

// Timings of the protocol with the init.
const (
	// startTimeout bounds a sandbox's start until its init is ready.
	startTimeout = 15 * time.Second
	// killWait is how long a killed command may take to be reported
	// before its whole sandbox is killed.
	killWait = 5 * time.Second
	// pipeGrace is how long a finished command's background children may
	// keep its output open before reading stops.
	pipeGrace = time.Second
)

var (
	// ErrDied is wrapped when a sandbox ends under a running command: its
	// init died or was killed (hostile code can do that). The next command
	// of the session starts a fresh sandbox.
	ErrDied = errors.New("the sandbox ended while the command ran (its init process died or was killed): background processes and /tmp are gone; the next command starts a fresh sandbox")
	// ErrClosed is returned once the Manager is closed.
	ErrClosed = errors.New("the sandbox manager is closed")
)

// Config configures a Manager.
type Config struct {
	// Workspace is the host directory mounted at /workspace.
	Workspace string
	// ProxySocket is the egress proxy's unix socket on the host; empty
	// leaves the sandbox without any network beyond its loopback.
	ProxySocket string
	// Hide are directories inside the workspace that commands must not
	// see (a data directory kept in the workspace); each is covered by an
	// empty read-only directory.
	Hide []string
	// Private is a directory of the workspace (relative, slash-separated,
	// such as "uploads/sessions") whose subdirectories belong to sessions,
	// one each, named by the session: a session's sandbox shows its own
	// subdirectory, read-write, and nothing of the others'. The private
	// directory's top-level ancestor in the workspace ("uploads") is
	// read-only in every sandbox, so no command can move the private
	// files out from under the cover.
	Private string
	// ToolEnv are NAME=value pairs added to the commands' environment
	// (the variables AGENTHOST_TOOL_ENV names).
	ToolEnv []string
	// DiskLimit is the workspace's size cap in bytes, also the largest
	// file a command may write (RLIMIT_FSIZE) and the size of /tmp
	// (default 10 GiB).
	DiskLimit int64
	// NoFile is RLIMIT_NOFILE of every command (default 1024).
	NoFile uint64
	// IdleTimeout closes a session's sandbox after that long without a
	// command (default 15 minutes).
	IdleTimeout time.Duration
	// Now is the clock of the idle timeout (default time.Now).
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Binary is the program run as the sandbox's init (default: this
	// executable, which must call RunInitIfAsked first thing).
	Binary string
	// Bwrap is the bubblewrap binary (default: bwrap from PATH).
	Bwrap string
}

// Command is one shell command to run in a session's sandbox.
type Command struct {
	// Script is run with bash -c.
	Script string
	// Dir is the working directory inside the sandbox (default
	// /workspace).
	Dir string
	// Env is added to the sandbox's environment for this command.
	Env []string
	// Output receives stdout and stderr, combined.
	Output io.Writer
}

// Result is how a command ended.
type Result struct {
	// Code is the exit code when the command exited.
	Code int
	// Signal is the signal that killed it, or 0.
	Signal syscall.Signal
	// OutputHeld is set when background processes kept the output open
	// past a short grace after the command ended; later output is lost.
	OutputHeld bool
	// Note says why the command ran in a fresh sandbox when the session
	// had one before that is gone ("" otherwise).
	Note string
}

// noteDied is the note of a command that replaces a sandbox that died.
const noteDied = "the session's previous sandbox had ended (its init process died or was killed): background processes and /tmp are gone"

// Manager owns the sandboxes of one runtime, one per session.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	workspace string // real path
	binary    string
	bwrap     string
	env       []string
	hide      []string // paths inside the sandbox
	private   string   // Config.Private, cleaned; "" for none

	mu     sync.Mutex
	boxes  map[string]*box
	notes  map[string]string // session → why its old sandbox is gone
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// New returns a Manager; sandboxes start on a session's first command. It
// does not probe bubblewrap (see Probe).
func New(cfg Config) (*Manager, error) {
	if cfg.DiskLimit <= 0 {
		cfg.DiskLimit = DefaultDiskLimit
	}
	if cfg.NoFile == 0 {
		cfg.NoFile = DefaultNoFile
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ws, err := realDir(cfg.Workspace)
	if err != nil {
		return nil, fmt.Errorf("sandbox: workspace: %w", err)
	}
	bin := cfg.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("sandbox: finding this program for the init: %w", err)
		}
	}
	bwrap := cfg.Bwrap
	if bwrap == "" {
		if bwrap, err = exec.LookPath("bwrap"); err != nil {
			return nil, fmt.Errorf("sandbox: %w", Probe(context.Background()))
		}
	}
	var hide []string
	for _, h := range cfg.Hide {
		real, err := realDir(h)
		if err != nil {
			continue // nothing there to hide
		}
		rel, err := filepath.Rel(ws, real)
		if err != nil || !filepath.IsLocal(rel) {
			return nil, fmt.Errorf("sandbox: %s to hide is not inside the workspace %s", h, ws)
		}
		hide = append(hide, path.Join(Workspace, filepath.ToSlash(rel)))
	}
	env := append(append([]string(nil), baseEnv...), cfg.ToolEnv...)
	if cfg.ProxySocket != "" {
		env = append(env, proxyEnv...)
	}
	private := path.Clean(cfg.Private)
	if cfg.Private == "" || private == "." {
		private = ""
	} else if !filepath.IsLocal(private) {
		return nil, fmt.Errorf("sandbox: private directory %q is not inside the workspace", cfg.Private)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, workspace: ws, binary: bin, bwrap: bwrap, env: env, hide: hide, private: private,
		boxes: map[string]*box{}, notes: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go m.sweeper()
	return m, nil
}

// sweeper calls Sweep a few times per idle timeout until Close.
func (m *Manager) sweeper() {
	defer close(m.done)
	period := min(max(m.cfg.IdleTimeout/4, time.Second), time.Minute)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Sweep()
		}
	}
}

// Sweep closes the sandboxes idle for at least the idle timeout (by
// Config.Now) and returns how many it closed.
func (m *Manager) Sweep() int {
	now := m.cfg.Now()
	var victims []*box
	m.mu.Lock()
	for s, b := range m.boxes {
		if b.retireIfIdle(now, m.cfg.IdleTimeout) {
			delete(m.boxes, s)
			m.notes[s] = fmt.Sprintf("the session's previous sandbox was closed after %s without a command: background processes and /tmp are gone", m.cfg.IdleTimeout)
			victims = append(victims, b)
		}
	}
	m.mu.Unlock()
	for _, b := range victims {
		b.close()
	}
	return len(victims)
}

// Sessions returns the sessions that have a live sandbox.
func (m *Manager) Sessions() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for s, b := range m.boxes {
		if !b.isDead() {
			out = append(out, s)
		}
	}
	return out
}

// CloseSession ends a session's sandbox, if any, with everything running
// in it.
func (m *Manager) CloseSession(session string) {
	m.mu.Lock()
	b := m.boxes[session]
	delete(m.boxes, session)
	delete(m.notes, session)
	m.mu.Unlock()
	if b != nil {
		b.close()
	}
}

// CloseAll ends every sandbox (abort of all sessions); new commands start
// new ones.
func (m *Manager) CloseAll() {
	m.mu.Lock()
	boxes := m.boxes
	m.boxes = map[string]*box{}
	m.mu.Unlock()
	for _, b := range boxes {
		b.close()
	}
}

// Close ends every sandbox and refuses further commands.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	close(m.stop)
	<-m.done
	m.CloseAll()
	return nil
}

// Run runs c in the session's sandbox, starting the sandbox when the
// session has none. When ctx ends the command's process group is killed
// and Run returns how it ended; background processes of a command that
// ended by itself stay. A sandbox that dies under the command yields an
// error wrapping ErrDied.
func (m *Manager) Run(ctx context.Context, session string, c Command) (Result, error) {
	if len(c.Script) > MaxScript {
		return Result{}, fmt.Errorf("the command is %d bytes; at most %d fit in bash -c: write it to a file and run that", len(c.Script), MaxScript)
	}
	if c.Dir == "" {
		c.Dir = Workspace
	}
	if c.Output == nil {
		c.Output = io.Discard
	}
	for {
		b, note, err := m.box(ctx, session)
		if err != nil {
			return Result{}, err
		}
		id, ch, ok := b.register(m.cfg.Now())
		if !ok {
			continue // retired by Sweep meanwhile: take a fresh one
		}
		res, err := b.run(ctx, id, ch, c)
		b.unregister(id, m.cfg.Now())
		res.Note = note
		if errors.Is(err, ErrDied) {
			m.forget(session, b, noteDied)
		}
		return res, err
	}
}

// box returns the session's live sandbox, starting one when needed, and
// the note to give when it replaces one that is gone.
func (m *Manager) box(ctx context.Context, session string) (*box, string, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, "", ErrClosed
	}
	b := m.boxes[session]
	if b != nil && b.isDead() {
		delete(m.boxes, session)
		if b.unexpected() {
			m.notes[session] = noteDied
		}
		b = nil
	}
	if b != nil {
		m.mu.Unlock()
		<-b.ready
		if b.startErr != nil {
			return nil, "", b.startErr
		}
		return b, "", nil
	}
	b = newBox(m, session)
	m.boxes[session] = b
	note := m.notes[session]
	delete(m.notes, session)
	m.mu.Unlock()
	if err := b.start(ctx); err != nil {
		m.forget(session, b, note)
		return nil, "", err
	}
	return b, note, nil
}

// forget removes b from the session if it is still the session's sandbox,
// keeping note for the next one.
func (m *Manager) forget(session string, b *box, note string) {
	m.mu.Lock()
	if m.boxes[session] == b {
		delete(m.boxes, session)
		if note != "" {
			m.notes[session] = note
		}
	}
	m.mu.Unlock()
}
