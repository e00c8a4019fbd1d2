package testutil

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NodeSDK is a JavaScript package that a scripts/service-*.sh installs for
// the interoperability tests (a real third-party client run by node), and
// names in an environment variable.
type NodeSDK struct {
	Env    string // the variable holding the install directory
	Name   string // what it is, for the skip or failure message
	Script string // the script that installs it
}

// The packages the tests run.
var (
	A2AJS        = NodeSDK{"AGENTHOST_TEST_A2A_JS", "the A2A JavaScript SDK", "scripts/service-a2a.sh"}
	MCPJS        = NodeSDK{"AGENTHOST_TEST_MCPJS", "the MCP TypeScript SDK", "scripts/service-mcpjs.sh"}
	Connectonion = NodeSDK{"AGENTHOST_TEST_CONNECTONION", "the reference TypeScript client", "scripts/service-connectonion.sh"}
)

// Dir is the directory the package is installed in (its node_modules is
// below it). When the variable is unset the test is skipped, except under
// CI=true, where every service must be there and it fails, naming the
// script to run; node must be on PATH.
func (s NodeSDK) Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(s.Env)
	if dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: run %s (make test does)", s.Env, s.Script)
		}
		t.Skipf("%s is not installed: run %s", s.Name, s.Script)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node: %v", err)
	}
	return dir
}

// NodePath is the NODE_PATH=… entry that lets a CommonJS script find the
// package installed in dir.
func NodePath(dir string) string {
	return "NODE_PATH=" + filepath.Join(dir, "node_modules")
}

// ModuleWorkDir makes a directory holding a copy of the ES module script
// beside a link to dir's node_modules, and returns it: ES modules resolve
// packages from the script's directory upwards, not from NODE_PATH. Run
// the copy (its base name) from there.
func ModuleWorkDir(t testing.TB, dir, script string) string {
	t.Helper()
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "node_modules"), filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, filepath.Base(script)), src, 0o644); err != nil {
		t.Fatal(err)
	}
	return work
}

// RunJSON runs cmd (a node script that reports on its last line of
// output, as one JSON value) and decodes that line into v. A failed run
// or an undecodable line fails the test, showing everything the command
// wrote.
func RunJSON(t testing.TB, cmd *exec.Cmd, v any) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s\n%s", strings.Join(cmd.Args, " "), err, out.String(), errb.String())
	}
	line := strings.TrimSpace(out.String())
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), v); err != nil {
		t.Fatalf("%s: output %q: %v (stderr %s)", strings.Join(cmd.Args, " "), out.String(), err, errb.String())
	}
}
