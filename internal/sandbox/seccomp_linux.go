package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"sort"

	bpf "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// dockerPolicy compiles Docker's default seccomp profile, as it applies to
// a process without capabilities on this machine's architecture and
// kernel, into a BPF policy, in pure Go. It is at least as strict as the
// profile: system calls the profile names but this architecture's table
// lacks are refused, as are all calls of foreign ABIs (x32, 32-bit x86),
// which the profile would allow. Everything else refused answers EPERM, as
// in Docker.
func dockerPolicy() (*bpf.Policy, error) {
	prof, err := mobyseccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}})
	if err != nil {
		return nil, fmt.Errorf("seccomp: Docker's default profile: %w", err)
	}
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	if prof.DefaultAction != specs.ActErrno {
		return nil, fmt.Errorf("seccomp: unexpected default action %s in Docker's profile", prof.DefaultAction)
	}
	defaultErrno := uint(unix.EPERM)
	if prof.DefaultErrnoRet != nil {
		defaultErrno = *prof.DefaultErrnoRet
	}
	if defaultErrno != uint(unix.EPERM) {
		return nil, fmt.Errorf("seccomp: unexpected default errno %d in Docker's profile", defaultErrno)
	}
	unconditional := map[string]bool{}
	conditional := map[string][]bpf.ArgumentConditions{}
	var refusals []bpf.SyscallGroup
	for _, sc := range prof.Syscalls {
		conds, err := conditions(sc.Args)
		if err != nil {
			return nil, fmt.Errorf("seccomp: %v: %w", sc.Names, err)
		}
		var names []string
		for _, n := range sc.Names {
			if _, ok := info.SyscallNames[n]; ok {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			continue
		}
		switch sc.Action {
		case specs.ActAllow:
			for _, n := range names {
				if conds == nil {
					unconditional[n] = true
				} else {
					conditional[n] = append(conditional[n], conds)
				}
			}
		case specs.ActErrno:
			errno := defaultErrno
			if sc.ErrnoRet != nil {
				errno = *sc.ErrnoRet
			}
			g := bpf.SyscallGroup{Action: bpf.Action(unix.SECCOMP_RET_ERRNO | uint32(errno&unix.SECCOMP_RET_DATA))}
			for _, n := range names {
				if conds == nil {
					g.Names = append(g.Names, n)
				} else {
					g.NamesWithCondtions = append(g.NamesWithCondtions, bpf.NameWithConditions{Name: n, Conditions: conds})
				}
			}
			refusals = append(refusals, g)
		default:
			return nil, fmt.Errorf("seccomp: %v: action %s is not supported", sc.Names, sc.Action)
		}
	}
	allow := bpf.SyscallGroup{Action: bpf.ActionAllow}
	for n := range unconditional {
		allow.Names = append(allow.Names, n)
	}
	sort.Strings(allow.Names)
	var condNames []string
	for n := range conditional {
		if !unconditional[n] {
			condNames = append(condNames, n)
		}
	}
	sort.Strings(condNames)
	for _, n := range condNames {
		for _, c := range conditional[n] {
			allow.NamesWithCondtions = append(allow.NamesWithCondtions, bpf.NameWithConditions{Name: n, Conditions: c})
		}
	}
	// Refusals with their own errno come first, so a call both refused
	// and allowed is refused.
	p := &bpf.Policy{DefaultAction: bpf.ActionErrno, Syscalls: append(refusals, allow)}
	if _, err := p.Assemble(); err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return p, nil
}

// conditions turns the profile's argument comparisons (all must hold) into
// the BPF library's; nil means none.
func conditions(args []specs.LinuxSeccompArg) (bpf.ArgumentConditions, error) {
	if len(args) == 0 {
		return nil, nil
	}
	var out bpf.ArgumentConditions
	for _, a := range args {
		c := bpf.Condition{Argument: uint32(a.Index), Value: a.Value}
		switch a.Op {
		case specs.OpEqualTo:
			c.Operation = bpf.Equal
		case specs.OpNotEqual:
			c.Operation = bpf.NotEqual
		case specs.OpLessThan:
			c.Operation = bpf.LessThan
		case specs.OpLessEqual:
			c.Operation = bpf.LessOrEqual
		case specs.OpGreaterThan:
			c.Operation = bpf.GreaterThan
		case specs.OpGreaterEqual:
			c.Operation = bpf.GreaterOrEqual
		case specs.OpMaskedEqual:
			// (arg & Value) == ValueTwo; only the form "no bit of the mask
			// set" has an equivalent.
			if a.ValueTwo != 0 {
				return nil, fmt.Errorf("masked comparison with %#x is not supported", a.ValueTwo)
			}
			c.Operation = bpf.BitsNotSet
		default:
			return nil, fmt.Errorf("comparison %s is not supported", a.Op)
		}
		out = append(out, c)
	}
	return out, nil
}

// installSeccomp sets no_new_privs and loads the filter on every thread of
// this process (TSYNC), so nothing started afterwards escapes it.
func installSeccomp() error {
	p, err := dockerPolicy()
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if !bpf.Supported() {
		return errors.New("seccomp: the kernel does not support seccomp filters")
	}
	return bpf.LoadFilter(bpf.Filter{NoNewPrivs: true, Flag: bpf.FilterFlagTSync, Policy: *p})
}
