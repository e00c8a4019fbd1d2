package docker

import (
	"encoding/json"
	"fmt"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BwrapSyscalls are the system calls bubblewrap makes to build the tool
// sandbox in an unprivileged user namespace, which Docker's default
// profile allows only to holders of CAP_SYS_ADMIN: clone and unshare with
// namespace flags, setns, mount, umount2, pivot_root, and sethostname and
// setdomainname for the sandbox's own UTS namespace. Without a user
// namespace the process has no capability, and the kernel refuses all of
// them but clone/unshare of a new user namespace.
var BwrapSyscalls = []string{"clone", "unshare", "setns", "mount", "umount2", "pivot_root", "sethostname", "setdomainname"}

// SeccompProfile returns the containers' seccomp profile as JSON: Docker's
// default profile (github.com/moby/profiles/seccomp) plus BwrapSyscalls.
// clone3 keeps the default's ENOSYS answer (its flags cannot be filtered),
// so that libc falls back to clone.
func SeccompProfile() ([]byte, error) {
	p := seccomp.DefaultProfile()
	p.Syscalls = append(p.Syscalls, &seccomp.Syscall{
		LinuxSyscall: specs.LinuxSyscall{Names: BwrapSyscalls, Action: specs.ActAllow},
		Comment:      "agenthost: bubblewrap's sandbox in an unprivileged user namespace",
	})
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("docker: seccomp profile: %w", err)
	}
	return b, nil
}
