//go:build !linux

package docker

import "errors"

// BwrapSyscalls: see seccomp_linux.go.
var BwrapSyscalls = []string{"clone", "unshare", "setns", "mount", "umount2", "pivot_root", "sethostname", "setdomainname"}

// SeccompProfile needs Docker's default profile, which its package
// builds on Linux only: run the platform on Linux.
func SeccompProfile() ([]byte, error) {
	return nil, errors.New("docker: the containers' seccomp profile is built on Linux only: run the platform on Linux")
}
