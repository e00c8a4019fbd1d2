package mcptools

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// inheritedEnv are the variables a local server gets from this process, the
// same few the MCP TypeScript SDK passes on; API keys and other secrets of
// the host stay out of servers that did not ask for them.
var inheritedEnv = []string{"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "TMPDIR"}

// terminateAfter is how long Close waits for a local server to exit once
// its stdin is closed before it signals the server.
const terminateAfter = 2 * time.Second

// process is a local server's process (its whole process group), or, for
// a remote server, the HTTP transport whose idle connections Close closes.
type process struct {
	cmd    *exec.Cmd
	stderr *tail
	idle   *http.Transport
}

func newProcess(command []string, env map[string]string, dir string) (*process, error) {
	// A bare name is looked up in PATH; a path is taken from the server's
	// working directory, as a shell started there would.
	path := command[0]
	if !strings.ContainsRune(path, filepath.Separator) {
		p, err := exec.LookPath(path)
		if err != nil {
			return nil, fmt.Errorf("command %q: %w", command[0], err)
		}
		path = p
	} else if !filepath.IsAbs(path) && dir != "" {
		path = filepath.Join(dir, path)
	}
	cmd := exec.Command(path, command[1:]...)
	cmd.Dir = dir
	vars := map[string]string{}
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			vars[k] = v
		}
	}
	for k, v := range env {
		vars[k] = v
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cmd.Env = make([]string, 0, len(keys))
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+vars[k])
	}
	p := &process{cmd: cmd, stderr: &tail{max: 4096}}
	cmd.Stderr = p.stderr
	// Close reaps the process; the stderr copy must not outlive it when a
	// child of the server still holds the pipe.
	cmd.WaitDelay = terminateAfter
	setGroup(cmd)
	return p, nil
}

func (p *process) transport() mcp.Transport {
	return &mcp.CommandTransport{Command: p.cmd, TerminateDuration: terminateAfter}
}

// stop kills what is left of the process group (children the server
// started and left behind), or closes a remote server's idle connections.
// The SDK closes the session and reaps the server's own process.
func (p *process) stop() {
	if p == nil {
		return
	}
	if p.idle != nil {
		p.idle.CloseIdleConnections()
	}
	if p.cmd != nil && p.cmd.Process != nil {
		killGroup(p.cmd.Process.Pid)
	}
}

// stderrTail is the end of what a local server wrote to stderr.
func (p *process) stderrTail() string {
	if p == nil || p.stderr == nil {
		return ""
	}
	return p.stderr.String()
}

// stderrNote is stderrTail for an error message: its last lines, or "".
func (p *process) stderrNote() string {
	t := strings.TrimSpace(p.stderrTail())
	if t == "" {
		return ""
	}
	lines := strings.Split(t, "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "; its stderr ends: " + strings.Join(lines, " | ")
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
