//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agenthost/agenthost/internal/runtime"
)

// instance is one run of a runtime that this driver started or re-attached.
type instance struct {
	id  string
	dir string
	st  state
	// recovered: re-attached by Recover, so not our child; watched through
	// pidfd (or /proc when nil).
	recovered bool
	pidfd     *os.File
	done      chan struct{} // closed once the run has ended and been cleaned up
	// killed is set when the driver sends SIGKILL, so that an OOM kill in
	// the runtime's cgroup is not taken for the cause of that death.
	killed atomic.Bool

	mu       sync.Mutex
	exited   bool
	result   runtime.ExitResult
	exitedAt time.Time
}

func newInstance(id, dir string, st state, recovered bool, pidfd *os.File) *instance {
	return &instance{id: id, dir: dir, st: st, recovered: recovered, pidfd: pidfd, done: make(chan struct{})}
}

// hasExited reports whether the run has ended.
func (in *instance) hasExited() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// exit returns how the run ended; only meaningful after done.
func (in *instance) exit() (runtime.ExitResult, time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.result, in.exitedAt
}

// finishLocked records the end of the run; in.mu must be held, and is
// released.
func (in *instance) finishLocked(res runtime.ExitResult, at time.Time) {
	in.exited = true
	in.result = res
	in.exitedAt = at
	if in.pidfd != nil {
		in.pidfd.Close()
	}
	in.mu.Unlock()
	close(in.done)
}

// aliveLocked reports whether a recovered runtime's leader still runs;
// while it does, its pid, group and session ids cannot be anyone else's.
func (in *instance) aliveLocked() bool {
	if in.exited {
		return false
	}
	if !in.recovered {
		// Our child is reaped under in.mu only, so until exited is set its
		// ids are ours even if it is already a zombie.
		return true
	}
	if in.pidfd != nil {
		return !pidfdExited(in.pidfd)
	}
	ps, err := readStat(in.st.PID)
	return err == nil && ps.startTicks == in.st.StartTicks && ps.state != 'Z'
}

// signal sends sig to the runtime's process group, if it still runs.
func (in *instance) signal(sig syscall.Signal) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.aliveLocked() {
		return nil
	}
	if err := syscall.Kill(-in.st.PGID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("process: signal runtime %s: %w", in.id, err)
	}
	return nil
}

// kill sends SIGKILL to everything in the runtime's session and cgroup.
func (in *instance) kill() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.aliveLocked() {
		return nil
	}
	in.killed.Store(true)
	if err := killSession(in.st.SID); err != nil {
		return fmt.Errorf("process: kill runtime %s: %w", in.id, err)
	}
	if cg := in.st.Cgroup; cg != nil {
		if err := cg.kill(); err != nil {
			return fmt.Errorf("process: kill runtime %s: %w", in.id, err)
		}
	}
	return nil
}

// cleanUp kills what the ended run left in its cgroup, says whether the
// OOM killer was at work there, and removes the cgroup.
func (d *Driver) cleanUp(in *instance) (oomKills uint64) {
	cg := in.st.Cgroup
	if cg == nil {
		return 0
	}
	if err := cg.kill(); err != nil {
		d.log.Warn("runtime left processes behind", "runtime", in.id, "err", err)
	}
	oomKills = cg.oomKills()
	if oomKills > 0 {
		d.log.Warn("the kernel killed processes of the runtime at its memory limit", "runtime", in.id,
			"oom_kills", oomKills, "memory_limit", formatBytes(cg.MemoryBytes))
	}
	return oomKills
}

// removeCgroup removes the ended run's cgroup.
func (d *Driver) removeCgroup(in *instance) {
	if cg := in.st.Cgroup; cg != nil {
		if err := cg.destroy(); err != nil {
			d.log.Warn("cannot remove the runtime's cgroup", "runtime", in.id, "err", err)
		}
	}
}

// watchChild waits for a runtime the driver started, kills what it left
// in its session while its ids are still held by its zombie, then reaps it.
func (d *Driver) watchChild(in *instance, cmd *exec.Cmd) {
	err := waitNoReap(in.st.PID)
	in.mu.Lock()
	if err == nil {
		if kerr := killSession(in.st.SID); kerr != nil {
			d.log.Warn("runtime left processes behind", "runtime", in.id, "err", kerr)
		}
	}
	ooms := d.cleanUp(in)
	res := exitResult(cmd.Wait(), cmd.ProcessState)
	if ooms > 0 && res.ExitCode == 128+int(syscall.SIGKILL) && !in.killed.Load() {
		res.Err = memoryLimitError{limit: in.st.Cgroup.MemoryBytes}
		// In the log too, so Inspect's last lines say it.
		if f, err := os.OpenFile(d.logPath(in.id), os.O_WRONLY|os.O_APPEND, 0); err == nil {
			fmt.Fprintf(f, "agenthost: runtime %s %v\n", in.id, res.Err)
			f.Close()
		}
	}
	d.removeCgroup(in)
	d.log.Info("runtime exited", "runtime", in.id, "pid", in.st.PID, "exit_code", res.ExitCode, "err", res.Err)
	in.finishLocked(res, d.now())
}

// exitResult turns a reaped child's status into the shell's convention.
func exitResult(werr error, ps *os.ProcessState) runtime.ExitResult {
	if ps == nil {
		return runtime.ExitResult{ExitCode: -1, Err: fmt.Errorf("process: wait: %w", werr)}
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		return runtime.ExitResult{ExitCode: 128 + int(ws.Signal()), Err: fmt.Errorf("process: killed by signal %d (%v)", int(ws.Signal()), ws.Signal())}
	case ok && ws.Exited():
		return runtime.ExitResult{ExitCode: ws.ExitStatus()}
	default:
		return runtime.ExitResult{ExitCode: ps.ExitCode(), Err: werr}
	}
}

// watchRecovered waits for a re-attached runtime to exit, then kills what
// it left in its session.
func (d *Driver) watchRecovered(in *instance) {
	defer d.wg.Done()
	if !d.waitRecovered(in) {
		return // driver closed
	}
	in.mu.Lock()
	// The leader is gone and reaped by its new parent. Its session id is
	// still ours if anything is left in the session, unless a new process
	// now owns the id as its pid — then the session is that process's.
	if ps, err := readStat(in.st.SID); err != nil || ps.startTicks == in.st.StartTicks {
		if kerr := killSession(in.st.SID); kerr != nil {
			d.log.Warn("runtime left processes behind", "runtime", in.id, "err", kerr)
		}
	}
	d.cleanUp(in)
	d.removeCgroup(in)
	d.log.Info("re-attached runtime exited", "runtime", in.id, "pid", in.st.PID)
	in.finishLocked(runtime.ExitResult{ExitCode: -1, Err: ErrExitUnknown}, d.now())
}

// waitRecovered blocks until the runtime exits (true) or the driver is
// closed (false).
func (d *Driver) waitRecovered(in *instance) bool {
	if in.pidfd != nil {
		stop := make(chan struct{})
		go func() {
			select {
			case <-d.closed:
				in.pidfd.SetReadDeadline(time.Now())
			case <-stop:
			}
		}()
		err := waitPidfd(in.pidfd)
		close(stop)
		if err == nil {
			return true
		}
		select {
		case <-d.closed:
			return false
		default:
		}
		d.log.Debug("pidfd not pollable, polling /proc", "runtime", in.id, "err", err)
	}
	t := time.NewTicker(d.opts.PollInterval)
	defer t.Stop()
	for {
		in.mu.Lock()
		alive := in.aliveLocked()
		in.mu.Unlock()
		if !alive {
			return true
		}
		select {
		case <-d.closed:
			return false
		case <-t.C:
		}
	}
}
