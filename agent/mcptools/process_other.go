//go:build !unix

package mcptools

import "os/exec"

func setGroup(*exec.Cmd) {}

func killGroup(int) {}
