//go:build linux

package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is what the driver needs from /proc/<pid>/stat.
type procStat struct {
	state   byte // R, S, D, Z, ...
	ppid    int
	pgrp    int
	session int
	// startTicks is when the process started, in clock ticks since boot:
	// with the pid and the boot id it names one process for good, where a
	// pid alone may have been reused.
	startTicks uint64
}

// parseStat parses /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may itself hold spaces and parentheses, so the fields are
// counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state(3) ppid(4) pgrp(5) session(6) ... starttime(22).
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("stat: %d fields after the command name", len(f))
	}
	var st procStat
	var err error
	st.state = f[0][0]
	ints := []struct {
		dst *int
		s   string
	}{{&st.ppid, f[1]}, {&st.pgrp, f[2]}, {&st.session, f[3]}}
	for _, x := range ints {
		if *x.dst, err = strconv.Atoi(x.s); err != nil {
			return procStat{}, fmt.Errorf("stat: %w", err)
		}
	}
	if st.startTicks, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("stat: %w", err)
	}
	return st, nil
}

// readStat reads /proc/<pid>/stat; a missing process is fs.ErrNotExist.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// readBootID identifies this boot of the kernel, so that a pid and start
// time persisted before a reboot never match a process after it. Empty when
// unavailable.
func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// sessionMembers lists the live (not zombie) processes of session sid.
func sessionMembers(sid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.session != sid || st.state == 'Z' || st.state == 'X' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// killSession sends SIGKILL to the process group sid and then to every
// process left in session sid (process groups the runtime made for its own
// children), until none is left. The caller guarantees that sid still
// belongs to the runtime: its leader is alive or an unreaped zombie, or no
// other process has taken the id.
func killSession(sid int) error {
	if sid <= 1 {
		return fmt.Errorf("kill session %d: refusing", sid)
	}
	if err := syscall.Kill(-sid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill session %d: %w", sid, err)
	}
	for i := range 50 {
		pids := sessionMembers(sid)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
	return fmt.Errorf("kill session %d: processes left: %v", sid, sessionMembers(sid))
}

// waitNoReap blocks until child pid exits but leaves it a zombie, so its
// pid, process group and session ids cannot be reused while the driver
// cleans up after it.
func waitNoReap(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// openPidfd returns a pollable pidfd for pid: it becomes readable when the
// process exits, and unlike the pid it can never name another process.
func openPidfd(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid)), nil
}

// fdReadable reports whether fd polls readable right now; for a pidfd,
// whether the process has exited.
func fdReadable(fd uintptr) bool {
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

// pidfdExited reports whether the process behind pidfd f has exited.
func pidfdExited(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return true
	}
	exited := true
	if err := rc.Control(func(fd uintptr) { exited = fdReadable(fd) }); err != nil {
		return true
	}
	return exited
}

// waitPidfd blocks until the process behind f exits, parked in the Go
// netpoller rather than holding a thread. It returns an error when f is
// closed, its read deadline passes, or f cannot be polled.
func waitPidfd(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(fdReadable)
}
