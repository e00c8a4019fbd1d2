package sandbox

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agenthost/agenthost/internal/egress"
)

// InitCommand is the hidden subcommand that runs the sandbox's init: the
// agent loop starts `bwrap ... -- <agenthost> sandbox-init ...`.
const InitCommand = "sandbox-init"

// controlFD is the init's end of the control socket, passed by bwrap.
const controlFD = 3

// RunInitIfAsked runs the sandbox's init and exits when this process was
// started as one (os.Args[1] is InitCommand); otherwise it returns at
// once. The agenthost command calls it first thing, and so must the
// TestMain of every test binary that starts sandboxes, because the init is
// this very binary, bind-mounted into the sandbox.
func RunInitIfAsked() {
	if len(os.Args) < 2 || os.Args[1] != InitCommand {
		return
	}
	os.Exit(initMain(os.Args[2:]))
}

// initMain sets the sandbox up from inside (limits, no_new_privs,
// seccomp, the proxy forwarder), says ready, and runs the commands the
// agent loop sends until the control socket closes. It returns the exit
// code.
func initMain(args []string) int {
	fs := flag.NewFlagSet(InitCommand, flag.ContinueOnError)
	nofile := fs.Uint64("nofile", 1024, "open files per process")
	fsize := fs.Uint64("fsize", 0, "largest file a process may write, in bytes (0: no limit)")
	proxy := fs.String("proxy", "", "unix socket of the egress proxy")
	listen := fs.String("listen", proxyListen, "TCP address of the proxy forwarder")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// Nothing inherited may leak into commands: only the control socket
	// is expected, and it is close-on-exec from here on.
	_ = unix.CloseRange(controlFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	conn, err := fileConn(os.NewFile(controlFD, "control"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox init: control socket: %v\n", err)
		return 1
	}
	in := &initProc{conn: conn, procs: map[uint64]*os.Process{}}
	if err := setup(*nofile, *fsize, *proxy, *listen); err != nil {
		_ = send(conn, message{Op: opFatal, Error: err.Error()})
		return 1
	}
	if err := send(conn, message{Op: opReady}); err != nil {
		return 1
	}
	in.serve()
	return 0
}

// setup applies the limits and filters to this process, which every
// command inherits, and starts the proxy forwarder.
func setup(nofile, fsize uint64, proxy, listen string) error {
	// Go's syscall.Setrlimit, so os/exec does not restore Go's raised
	// open-files limit in children.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: nofile, Max: nofile}); err != nil {
		return fmt.Errorf("setting RLIMIT_NOFILE to %d: %w", nofile, err)
	}
	if fsize > 0 {
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: fsize, Max: fsize}); err != nil {
			return fmt.Errorf("setting RLIMIT_FSIZE to %d: %w", fsize, err)
		}
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("setting RLIMIT_CORE to 0: %w", err)
	}
	// Under memory pressure the tools go first, not the agent loop.
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0); err != nil {
		return fmt.Errorf("raising oom_score_adj: %w", err)
	}
	if proxy != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("proxy forwarder: %w", err)
		}
		go forward(ln, proxy)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	if err := installSeccomp(); err != nil {
		return err
	}
	// Commands run as the same user and could otherwise ptrace the init
	// or open its descriptors through /proc; exec makes them dumpable
	// again, so this protects the init only.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing the dumpable flag: %w", err)
	}
	return nil
}

// forward relays each connection to the sandbox's proxy port to the egress
// proxy's unix socket, where the agent loop applies the policy.
func forward(ln net.Listener, sock string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		go func() {
			up, err := net.Dial("unix", sock)
			if err != nil {
				c.Close()
				return
			}
			egress.Splice(c, up)
		}()
	}
}

// initProc is the running init: its connection and its commands.
type initProc struct {
	conn   *net.UnixConn
	sendMu sync.Mutex
	mu     sync.Mutex
	procs  map[uint64]*os.Process
}

func (in *initProc) reply(m message) {
	in.sendMu.Lock()
	defer in.sendMu.Unlock()
	_ = send(in.conn, m)
}

// serve runs commands until the control socket closes, then kills every
// command's process group: the sandbox ends with its agent loop.
func (in *initProc) serve() {
	r := newReceiver(in.conn)
	for {
		m, files, err := r.recv()
		if errors.Is(err, errBadPacket) {
			continue
		}
		if err != nil {
			break
		}
		switch m.Op {
		case opRun:
			if len(files) != 1 {
				closeAll(files)
				in.reply(message{Op: opExit, ID: m.ID, Error: "a run message needs exactly one output descriptor"})
				continue
			}
			in.start(m, files[0])
		case opKill:
			closeAll(files)
			in.mu.Lock()
			p := in.procs[m.ID]
			in.mu.Unlock()
			if p != nil {
				go killGroup(p.Pid)
			}
		default:
			closeAll(files)
		}
	}
	in.mu.Lock()
	for _, p := range in.procs {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
	in.mu.Unlock()
}

// killGroup sends SIGKILL to a process group until it is empty: members
// forking while the first signal is delivered (a fork bomb) get the next
// one.
func killGroup(pgid int) {
	for i := 0; i < 1000; i++ {
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
			return // ESRCH: nobody left
		}
		time.Sleep(time.Millisecond)
	}
}

// start runs one command with bash -c in its own process group, its
// output on out, and reports its end.
func (in *initProc) start(m message, out *os.File) {
	cmd := exec.Command("/bin/bash", "-c", m.Script)
	cmd.Dir = m.Dir
	cmd.Env = append(os.Environ(), m.Env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := cmd.Start()
	out.Close()
	if err != nil {
		in.reply(message{Op: opExit, ID: m.ID, Error: err.Error()})
		return
	}
	in.mu.Lock()
	in.procs[m.ID] = cmd.Process
	in.mu.Unlock()
	in.reply(message{Op: opStarted, ID: m.ID, Pid: cmd.Process.Pid})
	go func() {
		_ = cmd.Wait()
		in.mu.Lock()
		delete(in.procs, m.ID)
		in.mu.Unlock()
		res := message{Op: opExit, ID: m.ID}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = int(ws.Signal())
		} else {
			res.Code = cmd.ProcessState.ExitCode()
		}
		in.reply(res)
	}()
}
