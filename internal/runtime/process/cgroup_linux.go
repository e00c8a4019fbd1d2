//go:build linux

package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agenthost/agenthost/internal/runtime"
)

// The driver's cgroups are a few files in cgroupfs, written directly
// rather than through containerd/cgroups: that library's v1 and v2 APIs
// differ (so both would be wrapped anyway) and it brings in eBPF, D-Bus,
// logrus and the OCI spec for what is here a dozen file writes.
//
// Each runtime gets <parent>/agenthost-<hash of the root>/<id> in the
// memory, pids and cpu controllers (cgroup v1: one directory in each
// controller's hierarchy; cgroup v2: one directory). <parent> is the
// platform's own cgroup unless Options.CgroupParent says otherwise, so the
// runtimes also count against whatever limits the platform runs under.

// cgroupControllers are the controllers every runtime's cgroup uses.
var cgroupControllers = []string{"memory", "pids", "cpu"}

// cgroupBase is where this driver's runtime cgroups go.
type cgroupBase struct {
	v2 bool
	// dirs is, for v1, each controller's directory of the base; for v2,
	// the base's single directory under the "" key.
	dirs map[string]string
	// parentV2 is the v2 parent directory whose subtree_control must
	// enable the controllers.
	parentV2 string
}

// v1Controllers are the controllers of cgroup v1 (what else a v1 mount's
// options say is not one: xattr, noprefix, name=...).
var v1Controllers = []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc"}

// mountInfo is one cgroup mount from /proc/self/mountinfo.
type mountInfo struct {
	root, point string
	v2          bool
	controllers []string // v1 only
}

func parseMountInfo(b []byte) []mountInfo {
	var out []mountInfo
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// id parent maj:min root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		m := mountInfo{root: unescapeMount(f[3]), point: unescapeMount(f[4])}
		switch g[0] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			for _, o := range strings.Split(g[2], ",") {
				if slices.Contains(v1Controllers, o) {
					m.controllers = append(m.controllers, o)
				}
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseProcCgroup parses /proc/self/cgroup into controller → path (v1)
// and the v2 path under the "" key.
func parseProcCgroup(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// findCgroups locates the base of this driver's cgroups: under parent
// (a cgroup path such as /agenthost) or, when parent is empty, under the
// platform's own cgroup. name is the base's own name.
func findCgroups(parent, name string) (*cgroupBase, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	pc, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mounts, own := parseMountInfo(mi), parseProcCgroup(pc)
	under := func(m mountInfo, ownPath string) (string, error) {
		p := parent
		if p == "" {
			p = ownPath
		}
		rel, err := filepath.Rel(m.root, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			return "", fmt.Errorf("cgroup %s is outside the hierarchy mounted at %s (root %s)", p, m.point, m.root)
		}
		return filepath.Join(m.point, rel), nil
	}
	// cgroup v1 when its memory controller is mounted (hybrid systems
	// have a v2 mount too, without the controllers).
	v1 := map[string]string{}
	for _, m := range mounts {
		for _, c := range m.controllers {
			if _, ok := v1[c]; !ok && slices.Contains(cgroupControllers, c) {
				dir, err := under(m, own[c])
				if err != nil {
					return nil, err
				}
				v1[c] = filepath.Join(dir, name)
			}
		}
	}
	if len(v1) > 0 {
		var missing []string
		for _, c := range cgroupControllers {
			if _, ok := v1[c]; !ok {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("cgroup v1 controllers %s are not mounted (have %v)", strings.Join(missing, ", "), v1)
		}
		return &cgroupBase{dirs: v1}, nil
	}
	for _, m := range mounts {
		if m.v2 {
			dir, err := under(m, own[""])
			if err != nil {
				return nil, err
			}
			return &cgroupBase{v2: true, parentV2: dir, dirs: map[string]string{"": filepath.Join(dir, name)}}, nil
		}
	}
	return nil, errors.New("no cgroup filesystem is mounted (want cgroup v2 at /sys/fs/cgroup, or v1 memory, pids and cpu hierarchies)")
}

// create makes (afresh) the cgroup called name under the base, with res's
// limits. A leftover of the same name, from a platform that crashed, is
// emptied and removed first.
func (b *cgroupBase) create(name string, res runtime.Resources) (*cgroupState, error) {
	st := b.of(name)
	st.MemoryBytes = res.MemoryBytes
	if err := st.destroy(); err != nil {
		return nil, fmt.Errorf("leftover cgroup: %w", err)
	}
	if err := b.enable(); err != nil {
		return nil, err
	}
	for _, d := range st.Dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			st.destroy()
			return nil, err
		}
	}
	if err := st.limit(res); err != nil {
		st.destroy()
		return nil, err
	}
	return st, nil
}

// of is the cgroup called name under the base, whether it exists or not.
func (b *cgroupBase) of(name string) *cgroupState {
	st := &cgroupState{V2: b.v2}
	if b.v2 {
		st.Dirs = []string{filepath.Join(b.dirs[""], name)}
	} else {
		for _, c := range cgroupControllers {
			st.Dirs = append(st.Dirs, filepath.Join(b.dirs[c], name))
		}
	}
	return st
}

// enable makes the base, with the controllers enabled for its children
// (cgroup v2: in the parent's subtree_control, for the base, and in the
// base's own).
func (b *cgroupBase) enable() error {
	if !b.v2 {
		for _, d := range b.dirs {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		return nil
	}
	want := "+memory +pids +cpu"
	err := writeCgroup(b.parentV2, "cgroup.subtree_control", want)
	if errors.Is(err, unix.EBUSY) {
		// cgroup v2 lets a cgroup that holds processes have no
		// controllers for its children ("no internal processes"): when
		// the parent is the platform's own cgroup, the platform moves
		// into a leaf of its own, as a delegated service is expected to.
		leaf := filepath.Join(b.parentV2, "agenthost-platform")
		if merr := os.MkdirAll(leaf, 0o755); merr == nil {
			if merr = writeCgroup(leaf, "cgroup.procs", strconv.Itoa(os.Getpid())); merr == nil {
				err = writeCgroup(b.parentV2, "cgroup.subtree_control", want)
			}
		}
		if err != nil {
			return fmt.Errorf("enabling controllers in %s: %w (it holds other processes: run the platform in a cgroup of its own, e.g. under systemd-run --scope -p Delegate=yes)", b.parentV2, err)
		}
	}
	if err != nil {
		return fmt.Errorf("enabling controllers in %s: %w", b.parentV2, err)
	}
	if err := os.MkdirAll(b.dirs[""], 0o755); err != nil {
		return err
	}
	return writeCgroup(b.dirs[""], "cgroup.subtree_control", want)
}

// remove removes the base, if no runtime's cgroup is left in it.
func (b *cgroupBase) remove() {
	for _, d := range b.dirs {
		unix.Rmdir(d)
	}
}

// cpuPeriod is the CFS period the CPU quota is expressed in: 100 ms.
const cpuPeriod = 100000

// limit writes res's limits; zero fields are no limit.
func (st *cgroupState) limit(res runtime.Resources) error {
	quota := res.NanoCPUs * cpuPeriod / 1e9
	if res.NanoCPUs > 0 {
		quota = max(quota, 1000)
	}
	var w []struct{ dir, file, val string }
	add := func(dir, file, val string) { w = append(w, struct{ dir, file, val string }{dir, file, val}) }
	if st.V2 {
		d := st.Dirs[0]
		if res.MemoryBytes > 0 {
			add(d, "memory.max", strconv.FormatInt(res.MemoryBytes, 10))
			if _, err := os.Stat(filepath.Join(d, "memory.swap.max")); err == nil {
				add(d, "memory.swap.max", "0")
			}
		}
		if res.PidsLimit > 0 {
			add(d, "pids.max", strconv.FormatInt(res.PidsLimit, 10))
		}
		if quota > 0 {
			add(d, "cpu.max", fmt.Sprintf("%d %d", quota, cpuPeriod))
		}
	} else {
		mem, pids, cpu := st.Dirs[0], st.Dirs[1], st.Dirs[2]
		if res.MemoryBytes > 0 {
			add(mem, "memory.limit_in_bytes", strconv.FormatInt(res.MemoryBytes, 10))
			// With swap accounting, memory+swap gets the same limit: a
			// runtime over its limit is killed rather than swapped out.
			if _, err := os.Stat(filepath.Join(mem, "memory.memsw.limit_in_bytes")); err == nil {
				add(mem, "memory.memsw.limit_in_bytes", strconv.FormatInt(res.MemoryBytes, 10))
			}
		}
		if res.PidsLimit > 0 {
			add(pids, "pids.max", strconv.FormatInt(res.PidsLimit, 10))
		}
		if quota > 0 {
			add(cpu, "cpu.cfs_period_us", strconv.Itoa(cpuPeriod))
			add(cpu, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
		}
	}
	for _, x := range w {
		if err := writeCgroup(x.dir, x.file, x.val); err != nil {
			return err
		}
	}
	return nil
}

func writeCgroup(dir, file, val string) error {
	// O_TRUNC would fail on cgroupfs files; they take one write.
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", val, filepath.Join(dir, file), err)
	}
	return nil
}

// add moves pid (the whole process, all its threads) into the cgroup.
func (st *cgroupState) add(pid int) error {
	for _, d := range st.Dirs {
		if err := writeCgroup(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// procs lists the processes in the cgroup (v1: its pids hierarchy's
// directory, which every process of the runtime joins).
func (st *cgroupState) procs() ([]int, error) {
	d := st.Dirs[0]
	if !st.V2 {
		d = st.Dirs[1]
	}
	b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// kill sends SIGKILL to every process in the cgroup until none is left.
// Unlike the runtime's session, a cgroup cannot be left by a process of
// the runtime, so this catches what called setsid. It succeeds when the
// cgroup does not exist.
func (st *cgroupState) kill() error {
	if st.V2 {
		err := writeCgroup(st.Dirs[0], "cgroup.kill", "1")
		if gone(err) {
			if _, serr := os.Stat(st.Dirs[0]); errors.Is(serr, fs.ErrNotExist) {
				return nil
			}
		}
		// Linux before 5.14 has no cgroup.kill: kill one by one below.
	}
	for i := range 100 {
		pids, err := st.procs()
		if gone(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			killInCgroup(pid, st.Dirs[len(st.Dirs)-1])
		}
		time.Sleep(time.Duration(min(i+1, 20)) * time.Millisecond)
	}
	pids, _ := st.procs()
	return fmt.Errorf("cgroup %s: processes left after SIGKILL: %v", st.Dirs[0], pids)
}

// gone reports whether err says that a cgroup does not exist (any more:
// files of a cgroup being removed answer ENODEV).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV)
}

// killInCgroup sends SIGKILL to pid if it is still in the cgroup dir:
// through a pidfd, so a pid reused by a process elsewhere is never hit.
func killInCgroup(pid int, dir string) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return
		}
		syscall.Kill(pid, syscall.SIGKILL) // no pidfds (Linux < 5.3)
		return
	}
	defer unix.Close(fd)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil || !inCgroup(b, dir) {
		return
	}
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}

// inCgroup reports whether /proc/<pid>/cgroup content b places the
// process in the cgroup whose directory ends with dir's last two
// elements (<base>/<id>): enough to tell our runtimes' cgroups apart.
func inCgroup(b []byte, dir string) bool {
	suffix := "/" + filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasSuffix(line, suffix) {
			return true
		}
	}
	return false
}

// oomKills is how many processes the kernel's OOM killer killed in the
// cgroup because it reached its memory limit.
func (st *cgroupState) oomKills() uint64 {
	file := filepath.Join(st.Dirs[0], "memory.oom_control") // v1: the memory directory
	if st.V2 {
		file = filepath.Join(st.Dirs[0], "memory.events")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// destroy kills what is left in the cgroup and removes it. It succeeds
// when the cgroup does not exist.
func (st *cgroupState) destroy() error {
	if err := st.kill(); err != nil {
		return err
	}
	var last error
	for _, d := range st.Dirs {
		// A killed process leaves its cgroup a moment after it dies.
		for i := range 100 {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				last = nil
				break
			}
			last = fmt.Errorf("remove cgroup %s: %w", d, err)
			if !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(time.Duration(min(i+1, 20)) * time.Millisecond)
		}
		if last != nil {
			return last
		}
	}
	return nil
}

// memoryLimitError is the ExitResult.Err of a runtime the OOM killer
// killed at its memory limit.
type memoryLimitError struct{ limit int64 }

func (e memoryLimitError) Error() string {
	return "killed: memory limit " + formatBytes(e.limit) + " reached"
}

func (e memoryLimitError) Is(target error) bool { return target == runtime.ErrMemoryLimit }

// formatBytes writes n in the largest binary unit that divides it.
func formatBytes(n int64) string {
	switch {
	case n <= 0:
		return "(unknown)"
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + " GiB"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
