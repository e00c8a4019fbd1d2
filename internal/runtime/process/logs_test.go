package process

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLastLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("y", maxLineBytes+10)
	tests := []struct {
		name    string
		in      string
		n       int
		partial bool
		want    []string
	}{
		{"empty", "", 5, false, nil},
		{"one", "a\n", 5, false, []string{"a"}},
		{"no trailing newline", "a\nb", 5, false, []string{"a", "b"}},
		{"last n", "a\nb\nc\nd\n", 2, false, []string{"c", "d"}},
		{"partial first line dropped", "tail of a\nb\nc\n", 5, true, []string{"b", "c"}},
		{"partial single line kept", "only\n", 5, true, []string{"only"}},
		{"crlf", "a\r\nb\r\n", 5, false, []string{"a", "b"}},
		{"empty lines kept", "a\n\nb\n", 5, false, []string{"a", "", "b"}},
		{"invalid utf-8", "a\xffb\n", 5, false, []string{"a\uFFFDb"}},
		{"long line truncated", long + "\n", 5, false, []string{long[:maxLineBytes] + "…"}},
	}
	for _, tc := range tests {
		if got := lastLines([]byte(tc.in), tc.n, tc.partial); !slices.Equal(got, tc.want) {
			t.Errorf("%s: lastLines = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func writeLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := from; i < to; i++ {
		fmt.Fprintf(f, "line %05d\n", i) // 11 bytes
	}
}

func TestRotateAndTail(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), logName)
	if err := rotateLog(path, 100); err != nil {
		t.Errorf("rotate of a missing log: %v", err)
	}
	if got := tailLog(path, 3); got != nil {
		t.Errorf("tail of a missing log = %q", got)
	}

	writeLines(t, path, 0, 9) // 99 bytes: under the cap
	if err := rotateLog(path, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Fatalf("rotated a log under the cap: %v", err)
	}

	writeLines(t, path, 9, 50) // 550 bytes
	if err := rotateLog(path, 100); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	// The last 100 bytes start mid-line; the partial line is dropped.
	if want := "line 00041\n"; !strings.HasPrefix(string(old), want) || !strings.HasSuffix(string(old), "line 00049\n") || len(old) != 99 {
		t.Errorf("runtime.log.1 = %q, want lines 41 to 49", old)
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Errorf("runtime.log is %d bytes after rotation, want 0", fi.Size())
	}

	// Inspect reaches into the previous file when the current one is short.
	writeLines(t, path, 50, 52)
	want := []string{"line 00048", "line 00049", "line 00050", "line 00051"}
	if got := tailLog(path, 4); !slices.Equal(got, want) {
		t.Errorf("tailLog = %q, want %q", got, want)
	}
	if got := tailLog(path, 1); !slices.Equal(got, want[3:]) {
		t.Errorf("tailLog(1) = %q, want %q", got, want[3:])
	}

	// A window with no line boundary at all is kept as it is.
	p2 := filepath.Join(t.TempDir(), logName)
	os.WriteFile(p2, []byte(strings.Repeat("z", 500)), 0o600)
	if err := rotateLog(p2, 100); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p2 + ".1"); len(b) != 100 {
		t.Errorf("rotation of one long line kept %d bytes, want 100", len(b))
	}
}

// TestTailReadsOnlyTheEnd: a log far larger than tailBytes still yields
// its last lines, with the partial first line of the window dropped.
func TestTailReadsOnlyTheEnd(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), logName)
	writeLines(t, path, 0, 3*tailBytes/11)
	got := tailLog(path, 2)
	last := 3*tailBytes/11 - 1
	want := []string{fmt.Sprintf("line %05d", last-1), fmt.Sprintf("line %05d", last)}
	if !slices.Equal(got, want) {
		t.Errorf("tailLog = %q, want %q", got, want)
	}
	if got := tailLog(path, 1<<20); len(got) > tailBytes/11 || strings.HasPrefix(got[0], "ne") {
		t.Errorf("tailLog(huge n) returned %d lines starting %q: want at most one window, whole lines", len(got), got[0])
	}
}
