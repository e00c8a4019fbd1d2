//go:build linux

package process

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	tail := " 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615"
	tests := []struct {
		name string
		in   string
		want procStat
		err  bool
	}{
		{"plain", "42 (agenthost) S 1 42 42" + tail, procStat{state: 'S', ppid: 1, pgrp: 42, session: 42, startTicks: 987654}, false},
		{"spaces and parens in name", "7 (a b) (c)) R 3 5 6" + tail, procStat{state: 'R', ppid: 3, pgrp: 5, session: 6, startTicks: 987654}, false},
		{"zombie", "9 (x) Z 1 9 9" + tail, procStat{state: 'Z', ppid: 1, pgrp: 9, session: 9, startTicks: 987654}, false},
		{"no name", "42 agenthost S 1 42 42" + tail, procStat{}, true},
		{"truncated", "42 (agenthost) S 1 42 42 0 0", procStat{}, true},
		{"bad number", "42 (agenthost) S x 42 42" + tail, procStat{}, true},
		{"empty", "", procStat{}, true},
	}
	for _, tc := range tests {
		got, err := parseStat([]byte(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: parseStat = %+v, %v; want %+v, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestReadStatSelf(t *testing.T) {
	t.Parallel()
	st, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != os.Getppid() || st.startTicks == 0 {
		t.Errorf("readStat(self) = %+v, want ppid %d", st, os.Getppid())
	}
	if _, err := readStat(1 << 30); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("readStat(no such pid) = %v, want ErrNotExist", err)
	}
	if readBootID() == "" {
		t.Error("no boot id")
	}
}

// TestWaitPidfd checks the netpoller wait the driver uses for re-attached
// runtimes: it returns when the process exits, and when its deadline
// passes (driver closed).
func TestWaitPidfd(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	f, err := openPidfd(cmd.Process.Pid)
	if err != nil {
		t.Skipf("no pidfd here: %v", err)
	}
	defer f.Close()
	if pidfdExited(f) {
		t.Fatal("pidfdExited on a running process")
	}

	f.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := waitPidfd(f); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("waitPidfd past its deadline = %v, want ErrDeadlineExceeded (is the pidfd in the netpoller?)", err)
	}
	f.SetReadDeadline(time.Time{})

	done := make(chan error, 1)
	go func() { done <- waitPidfd(f) }()
	time.Sleep(50 * time.Millisecond)
	cmd.Process.Kill()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waitPidfd = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waitPidfd did not return after the process exited")
	}
	if !pidfdExited(f) {
		t.Error("pidfdExited = false after exit")
	}
}
