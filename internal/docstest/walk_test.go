package docstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/runtime/docker"
	"github.com/agenthost/agenthost/internal/testutil"
)

// walked are the pages every ```sh block of which must be marked; other
// pages are walked when they carry a marker, and listed as not walked
// otherwise.
var walked = []string{
	"README.md",
	"docs/a2a.md",
	"docs/architecture.md",
	"docs/client.md",
	"docs/docker.md",
	"docs/host.md",
	"docs/mcp.md",
	"docs/operations.md",
	"docs/models.md",
	"docs/performance.md",
	"docs/platform.md",
	"docs/relay.md",
	"docs/runtime-control.md",
	"docs/security.md",
	"docs/trust.md",
	"docs/web.md",
}

const netnsEnv = "AGENTHOST_DOCSTEST_NETNS"

// TestMain runs the tests in a network namespace of their own when it can
// (root, unshare(1) and ip(8)): the docs name fixed ports (8000, 8080, 8765),
// which must not meet whatever else this machine runs on them. Elsewhere
// they run on this machine's loopback, and a port in use fails the page.
func TestMain(m *testing.M) {
	if os.Getenv(netnsEnv) == "" && os.Geteuid() == 0 {
		if _, err := exec.LookPath("unshare"); err == nil {
			if _, err := exec.LookPath("ip"); err == nil && exec.Command("unshare", "--net", "true").Run() == nil {
				cmd := exec.Command("unshare", append([]string{"--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, os.Args[0]}, os.Args[1:]...)...)
				cmd.Env = append(os.Environ(), netnsEnv+"=1")
				cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
				err := cmd.Run()
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					os.Exit(ee.ExitCode())
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "docstest: unshare:", err)
					os.Exit(1)
				}
				os.Exit(0)
			}
		}
	}
	os.Exit(m.Run())
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// need fails under CI=true, and skips otherwise, when a tool the docs use
// is missing.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing: the walkthrough runs the docs' commands, which use it (scripts/services.sh installs it)", tool)
			}
			t.Skipf("%s is missing (scripts/services.sh installs it)", tool)
		}
	}
}

// TestMarkers checks every page's markers, without running anything.
func TestMarkers(t *testing.T) {
	root := repoRoot(t)
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{filepath.Join(root, "README.md")}, pages...)
	for _, p := range pages {
		rel, _ := filepath.Rel(root, p)
		blocks := parseFile(t, p, rel)
		marked := slices.ContainsFunc(blocks, func(b Block) bool { return b.Marked })
		if !marked && !slices.Contains(walked, rel) {
			if len(blocks) > 0 {
				t.Logf("%s: not walked (%d sh blocks, no walkthrough marker)", rel, len(blocks))
			}
			continue
		}
		for _, b := range blocks {
			if !b.Marked {
				t.Errorf("%s:%d: a sh block without a walkthrough marker: add <!-- walkthrough: run --> or <!-- walkthrough: skip (REASON) --> above it", rel, b.Line)
			}
		}
	}
}

func parseFile(t *testing.T, path, rel string) []Block {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Parse(rel, string(text))
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

// TestWalkthrough runs every marked command of every walked page, verbatim,
// in a fresh directory with a fresh HOME and AGENTHOST_DATA per page, with
// the agenthost built from this tree first on PATH. Servers (agenthost
// serve, relay, platform) start in the background and are stopped at the
// end of their block. Placeholders a reader replaces by what an earlier
// command printed (ah_live_…, 0x3d40…, <id>, TOKEN_ID) are replaced the
// same way.
func TestWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agenthost and runs the docs")
	}
	need(t, "bash", "curl", "bwrap") // bwrap: the runtimes the platform pages start
	root := repoRoot(t)
	// AGENTHOST_TEST_BINARY (as for the platform's tests) names an agenthost
	// built from this tree already; otherwise one is built, as make build does.
	bin := os.Getenv("AGENTHOST_TEST_BINARY")
	if bin == "" {
		built, cleanup, err := docker.StaticBinary(t.Context(), docker.BinaryOptions{FromSource: true, Source: root, Ldflags: "-s -w"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cleanup)
		bin = built
	}
	binDir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(binDir, "agenthost")); err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	pages = append([]string{filepath.Join(root, "README.md")}, pages...)
	for _, p := range pages {
		rel, _ := filepath.Rel(root, p)
		blocks := parseFile(t, p, rel)
		if !slices.ContainsFunc(blocks, func(b Block) bool { return b.Marked && b.Run }) {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(rel), ".md"), func(t *testing.T) {
			w := newWalker(t, binDir)
			for _, b := range blocks {
				w.block(b)
			}
		})
	}
}

// walker is one page's reader: a directory, an environment and what the
// commands printed so far.
type walker struct {
	t    *testing.T
	dir  string
	env  map[string]string
	vals map[string]string
}

func newWalker(t *testing.T, binDir string) *walker {
	// Not t.TempDir (0700): the platform, run as root, gives each runtime a
	// uid of its own, which must traverse the data directory's parents.
	base, err := os.MkdirTemp("", "docstest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killUnder(t, base)
		os.RemoveAll(base)
	})
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &walker{t: t, dir: filepath.Join(base, "work"), vals: map[string]string{}}
	for _, d := range []string{"work", "home", "data"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.env = map[string]string{
		"PATH":           binDir + ":" + os.Getenv("PATH"),
		"HOME":           filepath.Join(base, "home"),
		"AGENTHOST_DATA": filepath.Join(base, "data"),
		"LANG":           "C.UTF-8",
		"TERM":           "dumb",
	}
	return w
}

func (w *walker) environ() []string {
	out := make([]string, 0, len(w.env))
	for k, v := range w.env {
		out = append(out, k+"="+v)
	}
	return out
}

var (
	placeholders = []struct {
		re  *regexp.Regexp
		val string
	}{
		{regexp.MustCompile(`ah_live_…`), "token"},
		{regexp.MustCompile(`0x[0-9a-f]*…[0-9a-f]*`), "address"},
		{regexp.MustCompile(`<id>`), "session"},
		{regexp.MustCompile(`\bTOKEN_ID\b`), "tokenID"},
	}
	captures = []struct {
		re  *regexp.Regexp
		val string
	}{
		{regexp.MustCompile(`ah_live_[a-z2-7]{52}`), "token"},
		{regexp.MustCompile(`0x[0-9a-f]{64}`), "address"},
		{regexp.MustCompile(`session: ([0-9a-zA-Z_-]+)`), "session"},
		{regexp.MustCompile(`Token ([a-z0-9]+) for organization`), "tokenID"},
	}
	exportRe = regexp.MustCompile(`^export ([A-Z_][A-Z0-9_]*)=(\S+)$`)
	assignRe = regexp.MustCompile(`^([A-Z_][A-Z0-9_]*)=(\S+)$`)
)

// substitute fills the placeholders of a command's code (not of its
// comment) with what earlier commands printed.
func (w *walker) substitute(line string) string {
	cmd, comment := splitComment(line)
	for _, p := range placeholders {
		if !p.re.MatchString(cmd) {
			continue
		}
		v, ok := w.vals[p.val]
		if !ok {
			w.t.Fatalf("%q: no earlier command printed a %s to put in place of %s", cmd, p.val, p.re)
		}
		cmd = p.re.ReplaceAllLiteralString(cmd, v)
	}
	return cmd + comment
}

// splitComment splits a shell line before a # that starts a comment (one
// after white space, outside quotes).
func splitComment(line string) (code, comment string) {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && i > 0 && (line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, ""
}

func (w *walker) capture(out string) {
	for _, c := range captures {
		ms := c.re.FindAllStringSubmatch(out, -1)
		if len(ms) == 0 {
			continue
		}
		m := ms[len(ms)-1]
		w.vals[c.val] = m[len(m)-1]
	}
}

// server says whether cmd is a long-running server, and on which port.
func server(cmd string) (port int, ok bool) {
	code, _ := splitComment(strings.ReplaceAll(cmd, "\\\n", " "))
	f := strings.Fields(code)
	env := map[string]string{}
	for len(f) > 0 && assignRe.MatchString(f[0]) {
		m := assignRe.FindStringSubmatch(f[0])
		env[m[1]] = m[2]
		f = f[1:]
	}
	if len(f) < 2 || f[0] != "agenthost" || slices.Contains(f, "&&") || slices.Contains(f, "|") {
		return 0, false
	}
	switch {
	case f[1] == "serve":
		port = 8000
		if p, err := strconv.Atoi(env["AGENTHOST_PORT"]); err == nil {
			port = p
		}
	case f[1] == "relay":
		port = 8765
	case f[1] == "platform" && (len(f) == 2 || strings.HasPrefix(f[2], "-")):
		port = 8080
	default:
		return 0, false
	}
	for i, a := range f {
		if a == "--port" && i+1 < len(f) {
			if p, err := strconv.Atoi(f[i+1]); err == nil {
				port = p
			}
		}
	}
	return port, true
}

func (w *walker) block(b Block) {
	t := w.t
	if !b.Run {
		t.Logf("%s:%d: skipped: %s", b.Page, b.Line, b.Reason)
		return
	}
	var bgs []*background
	defer func() {
		for _, bg := range slices.Backward(bgs) {
			bg.stop(t)
		}
	}()
	for _, c := range b.Starts {
		if bg := w.run(b, c); bg != nil {
			bgs = append(bgs, bg)
		}
	}
	for _, c := range b.Commands {
		if r := b.SkipReason(c); r != "" {
			t.Logf("%s:%d: not run: %s (%s)", b.Page, b.Line, c, r)
			continue
		}
		if bg := w.run(b, c); bg != nil {
			bgs = append(bgs, bg)
		}
	}
}

// run runs one command; a server is left running and returned.
func (w *walker) run(b Block, raw string) *background {
	t := w.t
	cmd := w.substitute(raw)
	t.Logf("%s:%d: $ %s", b.Page, b.Line, cmd)
	if code, _ := splitComment(cmd); exportRe.MatchString(strings.TrimSpace(code)) {
		m := exportRe.FindStringSubmatch(strings.TrimSpace(code))
		w.env[m[1]] = strings.Trim(m[2], `"'`)
		return nil
	}
	if port, ok := server(cmd); ok {
		return w.start(b, cmd, port)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", cmd)
	c.Dir, c.Env = w.dir, w.environ()
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s:%d: %s: %v\n%s", b.Page, b.Line, cmd, err, out)
	}
	w.capture(string(out))
	for _, e := range b.Expected(raw) {
		if !strings.Contains(string(out), e) {
			t.Errorf("%s:%d: %s: output lacks %q:\n%s", b.Page, b.Line, cmd, e, out)
		}
	}
	return nil
}

// background is a server a block started.
type background struct {
	cmd  *exec.Cmd
	out  *testutil.Buffer
	done chan struct{}
}

func (w *walker) start(b Block, cmd string, port int) *background {
	t := w.t
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
		c.Close()
		t.Fatalf("%s:%d: %s: port %d is already in use here, and the docs name it", b.Page, b.Line, cmd, port)
	}
	bg := &background{out: &testutil.Buffer{}, done: make(chan struct{})}
	bg.cmd = exec.Command("bash", "-c", cmd)
	bg.cmd.Dir, bg.cmd.Env = w.dir, w.environ()
	bg.cmd.Stdout, bg.cmd.Stderr = bg.out, bg.out
	bg.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := bg.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	go func() { bg.cmd.Wait(); close(bg.done) }()
	// Polling with a deadline: waiting on an external process.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-bg.done:
			t.Fatalf("%s:%d: %s exited: %v\n%s", b.Page, b.Line, cmd, bg.cmd.ProcessState, bg.out)
		default:
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			c.Close()
			if relay := relayOf(cmd); relay == "" || announced(relay) {
				w.capture(bg.out.String())
				return bg
			}
		}
		if time.Now().After(deadline) {
			bg.stop(t)
			t.Fatalf("%s:%d: %s: not listening on port %d (or not announced to its relay) after 30 s\n%s", b.Page, b.Line, cmd, port, bg.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends a server as Ctrl-C would, then kills what is left of its group.
func (bg *background) stop(t *testing.T) {
	syscall.Kill(-bg.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-bg.done:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not stop within 15 s of SIGINT\n%s", bg.cmd, bg.out)
	}
	syscall.Kill(-bg.cmd.Process.Pid, syscall.SIGKILL)
	<-bg.done
}

// killUnder kills the processes whose environment names a path under dir:
// what the page's commands left behind on purpose, such as the runtimes a
// platform starts (they outlive the platform, which re-attaches them at its
// next start).
func killUnder(t *testing.T, dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		env, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(env, []byte(dir+"/")) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		t.Logf("stopping process %d, left by the page's commands", pid)
		cgroups := runtimeCgroups(pid)
		syscall.Kill(pid, syscall.SIGKILL)
		removeCgroups(t, pid, cgroups)
	}
}

// runtimeCgroups lists the directories of the cgroups the process driver
// made for pid (…/agenthost-<root's hash>/<runtime id>, in each
// hierarchy), which outlive the runtime: the next platform on the same
// data directory would remove them, and there is none here.
func runtimeCgroups(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// hierarchy-id:controllers:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.Contains(parts[2], "/agenthost-") {
			continue
		}
		matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", parts[2]))
		if d := filepath.Join("/sys/fs/cgroup", parts[2]); parts[1] == "" {
			matches = append(matches, d)
		}
		for _, d := range matches {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// removeCgroups removes dirs and their agenthost-* parents once pid has
// left them (a killed process leaves its cgroup a moment after it dies).
func removeCgroups(t *testing.T, pid int, dirs []string) {
	for _, d := range dirs {
		// Polling with a deadline: waiting for the kernel to empty it.
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := syscall.Rmdir(d)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				t.Errorf("removing the cgroup %s of process %d: %v", d, pid, err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		syscall.Rmdir(filepath.Dir(d)) // the base, once no runtime of it is left
	}
}

var relayURLRe = regexp.MustCompile(`--relay-url\s+(\S+)`)

// relayOf is the relay a server command announces to, as an HTTP URL, or "".
func relayOf(cmd string) string {
	m := relayURLRe.FindStringSubmatch(cmd)
	if m == nil {
		return ""
	}
	u := strings.Replace(strings.Replace(m[1], "wss://", "https://", 1), "ws://", "http://", 1)
	return strings.TrimSuffix(u, "/")
}

// announced says whether some agent is online at the relay: a server that
// announces is ready for the reader once the relay knows it.
func announced(relay string) bool {
	resp, err := http.Get(relay + "/api/agents")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var list struct {
		Agents []json.RawMessage `json:"agents"`
	}
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&list) == nil && len(list.Agents) > 0
}
