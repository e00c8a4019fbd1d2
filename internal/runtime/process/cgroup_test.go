//go:build linux

package process

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/runtime"
)

// hybrid is the mountinfo of a cgroup v1 machine with a v2 mount beside it
// (systemd's "hybrid" layout, as on this project's CI).
const hybrid = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 /docker/abc /mnt/odd\040dir rw - cgroup cgroup rw,blkio
`

func TestParseMountInfo(t *testing.T) {
	got := parseMountInfo([]byte(hybrid))
	want := []mountInfo{
		{root: "/", point: "/sys/fs/cgroup/cpu,cpuacct", controllers: []string{"cpu", "cpuacct"}},
		{root: "/", point: "/sys/fs/cgroup/memory", controllers: []string{"memory"}},
		{root: "/", point: "/sys/fs/cgroup/pids", controllers: []string{"pids"}},
		{root: "/", point: "/sys/fs/cgroup/systemd"},
		{root: "/", point: "/sys/fs/cgroup/unified", v2: true},
		{root: "/docker/abc", point: "/mnt/odd dir", controllers: []string{"blkio"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d mounts, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.root != w.root || g.point != w.point || g.v2 != w.v2 || !slices.Equal(g.controllers, w.controllers) {
			t.Errorf("mount %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"0::/user.slice/agenthost.scope\n", map[string]string{"": "/user.slice/agenthost.scope"}},
		{"4:memory:/process_api/x\n3:cpu,cpuacct:/\n1:name=systemd:/init.scope\n0::/\n",
			map[string]string{"memory": "/process_api/x", "cpu": "/", "cpuacct": "/", "name=systemd": "/init.scope", "": "/"}},
		{"garbage\n", map[string]string{}},
	}
	for _, tc := range tests {
		if got := parseProcCgroup([]byte(tc.in)); !maps.Equal(got, tc.want) {
			t.Errorf("parseProcCgroup(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add(hybrid)
	f.Add(`1 2 3:4 / /x\ rw - cgroup2 c rw` + "\n")
	f.Add(`\0\\\777 - - -`)
	f.Fuzz(func(t *testing.T, s string) {
		for _, m := range parseMountInfo([]byte(s)) {
			if m.v2 && len(m.controllers) > 0 {
				t.Fatalf("a v2 mount with v1 controllers: %+v", m)
			}
		}
		parseProcCgroup([]byte(s))
	})
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		64 << 20: "64 MiB", 1 << 30: "1 GiB", 3 << 29: "1536 MiB", 1536: "1536 bytes", 0: "(unknown)", 1000: "1000 bytes",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	err := error(memoryLimitError{limit: 512 << 20})
	if err.Error() != "killed: memory limit 512 MiB reached" || !errors.Is(err, runtime.ErrMemoryLimit) {
		t.Errorf("memoryLimitError = %q, Is(ErrMemoryLimit) = %v", err, errors.Is(err, runtime.ErrMemoryLimit))
	}
}

func TestInCgroup(t *testing.T) {
	proc := "4:memory:/process_api/x/agenthost-abc/rt1\n1:cpu:/agenthost-abc/rt1\n0::/\n"
	tests := []struct {
		dir  string
		want bool
	}{
		{"/sys/fs/cgroup/memory/process_api/x/agenthost-abc/rt1", true},
		{"/sys/fs/cgroup/cpu/agenthost-abc/rt1", true},
		{"/sys/fs/cgroup/cpu/agenthost-abc/rt10", false},
		{"/sys/fs/cgroup/cpu/agenthost-other/rt1", false},
	}
	for _, tc := range tests {
		if got := inCgroup([]byte(proc), tc.dir); got != tc.want {
			t.Errorf("inCgroup(%s) = %v, want %v", tc.dir, got, tc.want)
		}
	}
}

func TestParseUIDRange(t *testing.T) {
	tests := []struct {
		in   string
		want UIDRange
		ok   bool
	}{
		{"2000000-2999999", UIDRange{2000000, 2999999}, true},
		{" 5000 - 5001 ", UIDRange{5000, 5001}, true},
		{"5000-5000", UIDRange{}, false}, // one uid: only the probe's
		{"0-100000", UIDRange{}, false},  // root
		{"999-2000", UIDRange{}, false},  // system users
		{"3000-2000", UIDRange{}, false},
		{"2000000", UIDRange{}, false},
		{"a-b", UIDRange{}, false},
		{"1000-4294967295", UIDRange{}, false}, // (uid_t)-1
	}
	for _, tc := range tests {
		got, err := ParseUIDRange(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseUIDRange(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err == nil && !strings.Contains(got.String(), "-") {
			t.Errorf("String() = %q", got.String())
		}
	}
}
