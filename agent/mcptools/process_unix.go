//go:build unix

package mcptools

import (
	"os/exec"
	"syscall"
)

// setGroup puts a local server in a process group of its own, so that
// stopping it stops the children it started too.
func setGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// killGroup kills the process group pgid. The group's id stays reserved
// while any member lives, so this reaches no stranger.
func killGroup(pgid int) { _ = syscall.Kill(-pgid, syscall.SIGKILL) }
