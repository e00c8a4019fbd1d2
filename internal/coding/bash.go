package coding

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/sandbox"
)

// pipeGrace is how long a finished command's background children may keep
// its output pipe open before the tool stops reading and returns.
const pipeGrace = time.Second

// commandEnv keeps commands from waiting on a pager or a password prompt
// that nobody will ever answer, and from colouring output for the model.
var commandEnv = []string{"PAGER=cat", "GIT_PAGER=cat", "GIT_TERMINAL_PROMPT=0", "NO_COLOR=1", "TERM=dumb"}

// bashArgs are the arguments of the bash tool.
type bashArgs struct {
	Command     string `json:"command" jsonschema:"the shell command, run with bash -c in the workspace"`
	Timeout     int    `json:"timeout,omitempty" jsonschema:"timeout in milliseconds (default 120000, at most 600000)"`
	Description string `json:"description,omitempty" jsonschema:"what the command does in 5-10 words, shown to the person who approves it"`
	Workdir     string `json:"workdir,omitempty" jsonschema:"directory to run in, relative to the workspace (default: the workspace)"`
}

func bashTool(w *Workspace, opts Options) agent.Tool {
	desc := fmt.Sprintf("Run a shell command with bash -c in the workspace. stdin is empty; stdout and stderr are combined and capped at %d KB (the start and the end are kept). "+
		"The exit code is reported. The command and all its child processes are killed on timeout (default %s, at most %s) or abort.",
		opts.OutputLimit>>10, opts.BashTimeout, opts.BashMaxTimeout)
	return newTool("bash", desc,
		func(ctx context.Context, a bashArgs) (string, error) { return runBash(ctx, w, opts, a) },
		func(_ context.Context, a bashArgs) (Request, error) {
			cmd := strings.TrimSpace(a.Command)
			if cmd == "" {
				return Request{}, errors.New("empty command")
			}
			md := map[string]any{"command": cmd}
			if a.Description != "" {
				md["description"] = a.Description
			}
			if a.Workdir != "" {
				md["workdir"] = a.Workdir
			}
			sh := analyzeShell(cmd)
			if sh.Opaque {
				md["unanalysed"] = "this command runs code the permission rules cannot see (eval, source, a computed command name, or a line that does not parse), so it is always asked about"
			}
			if len(sh.Patterns) == 0 {
				sh.Patterns = []string{cmd}
			}
			return Request{Permission: "bash", Patterns: sh.Patterns, Metadata: md, MustAsk: sh.Opaque}, nil
		})
}

func runBash(ctx context.Context, w *Workspace, opts Options, a bashArgs) (string, error) {
	if strings.TrimSpace(a.Command) == "" {
		return "", errors.New("command is required")
	}
	if a.Timeout < 0 {
		return "", errors.New("timeout must not be negative")
	}
	timeout := opts.BashTimeout
	if a.Timeout > 0 {
		timeout = min(time.Duration(a.Timeout)*time.Millisecond, opts.BashMaxTimeout)
	}
	rel, err := w.Resolve(a.Workdir)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(w.real, filepath.FromSlash(rel))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("workdir %s is not a directory", rel)
	}

	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// kctx ends early, with a cause, when the disk watcher kills.
	kctx, kill := context.WithCancelCause(cctx)
	defer kill(nil)
	out := &headTail{limit: opts.OutputLimit}
	stopWatch := w.disk.watch(kill)
	start := time.Now()
	var res bashResult
	if opts.Sandbox != nil {
		res, err = runSandboxed(kctx, opts, path.Join(WorkspacePath, rel), a.Command, out)
	} else {
		res, err = runOnHost(kctx, w, opts, dir, a.Command, out)
	}
	stopWatch()
	// A quick command that filled the disk between two checks is caught
	// here, for the writes that follow.
	w.disk.measureLater()

	var sb strings.Builder
	if res.note != "" {
		fmt.Fprintf(&sb, "[note: %s]\n", res.note)
	}
	sb.WriteString(out.String())
	if sb.Len() > 0 && !strings.HasSuffix(sb.String(), "\n") {
		sb.WriteByte('\n')
	}
	switch {
	case ctx.Err() != nil:
		return sb.String() + "[aborted: the command and its child processes were killed]", fmt.Errorf("command aborted: %w", context.Cause(ctx))
	case errors.Is(context.Cause(kctx), errDiskLimit):
		fmt.Fprintf(&sb, "[killed: the workspace exceeds its disk limit of %s]", formatBytes(w.disk.limit))
		return sb.String(), nil
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		fmt.Fprintf(&sb, "[timed out after %s: the command and its child processes were killed]", time.Since(start).Round(time.Millisecond))
		return sb.String(), nil
	case errors.Is(err, sandbox.ErrDied):
		fmt.Fprintf(&sb, "[failed: %v]", err)
		return sb.String(), err
	case err != nil:
		return "", fmt.Errorf("running bash: %w", err)
	}
	switch {
	case res.signal != 0:
		fmt.Fprintf(&sb, "[killed by signal %s]", res.signal)
	default:
		fmt.Fprintf(&sb, "[exit code %d]", res.code)
	}
	if res.held {
		sb.WriteString(" [background processes still hold the output; their further output is not shown]")
	}
	if w.disk != nil && w.disk.knownOver() {
		fmt.Fprintf(&sb, "\n[the workspace exceeds its disk limit of %s: writes are refused until files are deleted]", formatBytes(w.disk.limit))
	}
	return sb.String(), nil
}

// bashResult is how a command ended.
type bashResult struct {
	code   int
	signal syscall.Signal
	held   bool   // background processes kept the output open
	note   string // why the command ran in a fresh sandbox
}

// runSandboxed runs command in the session's sandbox, in dir (a path
// inside the sandbox).
func runSandboxed(ctx context.Context, opts Options, dir, command string, out io.Writer) (bashResult, error) {
	env := append(slices.Clone(commandEnv), opts.Env...)
	r, err := opts.Sandbox.Run(ctx, SessionFrom(ctx), sandbox.Command{Script: command, Dir: dir, Env: env, Output: out})
	return bashResult{code: r.Code, signal: r.Signal, held: r.OutputHeld, note: r.Note}, err
}

// runOnHost runs command directly, as this process's user: the mode
// without a sandbox.
func runOnHost(ctx context.Context, w *Workspace, opts Options, dir, command string, out io.Writer) (bashResult, error) {
	cmd := exec.CommandContext(ctx, "bash", "-c", command)
	cmd.Dir = dir
	base := opts.BaseEnv
	if base == nil {
		base = hostEnv(w.root)
	}
	cmd.Env = append(append(slices.Clone(base), commandEnv...), opts.Env...)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that one signal reaches every child the
	// command started, including ones it put in the background.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = pipeGrace
	runErr := cmd.Run()
	if ctx.Err() != nil && cmd.Process != nil {
		// Stragglers that left the group's leader behind die too.
		_ = killGroup(cmd.Process.Pid)
	}
	var exitErr *exec.ExitError
	switch {
	case runErr == nil || errors.Is(runErr, exec.ErrWaitDelay):
		return bashResult{held: runErr != nil}, nil
	case errors.As(runErr, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return bashResult{signal: ws.Signal()}, nil
		}
		return bashResult{code: exitErr.ExitCode()}, nil
	default:
		return bashResult{}, runErr
	}
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// headTail keeps the first third and the last two thirds of limit bytes of
// what is written, counting the rest: the start shows what ran, the end
// shows how it ended.
type headTail struct {
	mu    sync.Mutex
	limit int
	head  []byte
	tail  []byte // a window over the newest bytes, compacted as it grows
	total int
}

func (h *headTail) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	written := len(p)
	h.total += written
	headCap := h.limit / 3
	if n := min(headCap-len(h.head), len(p)); n > 0 {
		h.head = append(h.head, p[:n]...)
		p = p[n:]
	}
	tailCap := h.limit - headCap
	h.tail = append(h.tail, p...)
	if len(h.tail) > 2*tailCap {
		h.tail = append(h.tail[:0], h.tail[len(h.tail)-tailCap:]...)
	}
	return written, nil
}

// String returns the kept output, with a note where bytes were dropped.
func (h *headTail) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	tailCap := h.limit - h.limit/3
	tail := h.tail
	if len(tail) > tailCap {
		tail = tail[len(tail)-tailCap:]
	}
	dropped := h.total - len(h.head) - len(tail)
	if dropped == 0 {
		return strings.ToValidUTF8(string(h.head)+string(tail), "\uFFFD")
	}
	return strings.ToValidUTF8(fmt.Sprintf("%s\n[... output truncated: %d of %d bytes not shown ...]\n%s",
		h.head, dropped, h.total, tail), "\uFFFD")
}
