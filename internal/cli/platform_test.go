package cli

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/testutil"
)

func runCLI(ctx context.Context, dir string, args ...string) (int, string, string) {
	var out, errb testutil.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: testDataEnv(dir), Dir: dir}
	code := Run(ctx, env, args)
	return code, out.String(), errb.String()
}

// testDataEnv is an environment whose only variable points the platform's
// default data directory into dir, as AGENTHOST_DATA does for operators.
func testDataEnv(dir string) func(string) string {
	return func(k string) string {
		if k == "AGENTHOST_DATA" {
			return filepath.Join(dir, ".agenthost")
		}
		return ""
	}
}

var tokenRE = regexp.MustCompile(`ah_live_[a-z2-7]{52}`)

func TestPlatformTokenCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	code, out, stderr := runCLI(ctx, dir, "platform", "token", "create", "--org", "acme", "--label", "production")
	tok := tokenRE.FindString(out)
	if code != 0 || tok == "" || !strings.Contains(out, "shown only once") {
		t.Fatalf("token create = %d %q %q", code, out, stderr)
	}
	id := regexp.MustCompile(`Token (c[0-9a-z]{24})`).FindStringSubmatch(out)[1]
	code, out, _ = runCLI(ctx, dir, "platform", "token", "list", "--org", "acme")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "production") || !strings.Contains(out, "never") || strings.Contains(out, tok[8:]) {
		t.Fatalf("token list = %d %q", code, out)
	}
	for _, args := range [][]string{
		{"platform", "token", "create", "--label", "x"},
		{"platform", "token", "create", "--org", "acme"},
		{"platform", "token", "frobnicate", "--org", "acme"},
		{"platform", "token", "revoke", "--org", "acme"},
		{"platform", "token"},
		{"platform", "extra"},
	} {
		if code, _, _ := runCLI(ctx, dir, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
	if code, _, stderr := runCLI(ctx, dir, "platform", "token", "revoke", "--org", "acme", "cnope"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("revoke unknown = %d %q", code, stderr)
	}
	if code, _, stderr := runCLI(ctx, dir, "platform", "token", "list", "--org", "nobody"); code != 1 || !strings.Contains(stderr, `organization "nobody": not found`) {
		t.Fatalf("list unknown org = %d %q", code, stderr)
	}
	if code, out, _ := runCLI(ctx, dir, "platform", "token", "revoke", "--org", "acme", id); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke = %d %q", code, out)
	}
	if _, out, _ := runCLI(ctx, dir, "platform", "token", "list", "--org", "acme"); strings.Contains(out, id) {
		t.Fatalf("revoked token still listed: %q", out)
	}
}

// traversableDir is a temporary directory runtime users can traverse, as
// the data directory of a platform run as root must be.
func traversableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPlatformServes(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		t.Run(map[bool]string{false: "sandboxed", true: "insecure"}[insecure], func(t *testing.T) {
			testPlatformServes(t, insecure)
		})
	}
}

func testPlatformServes(t *testing.T, insecure bool) {
	dir := traversableDir(t)
	// A data directory as an older agenthost left it.
	if err := os.Mkdir(filepath.Join(dir, ".agenthost"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testutil.Buffer
	// The token commands' variables are no reason not to start.
	getenv := func(k string) string {
		switch k {
		case "AGENTHOST_ORG":
			return "acme"
		case "AGENTHOST_LABEL":
			return "ci"
		}
		return testDataEnv(dir)(k)
	}
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: getenv, Dir: dir}
	done := make(chan int, 1)
	args := []string{"platform", "--port", "0", "--host", "127.0.0.1", "--ports", "26000-26009", "--runtime-uids", "2900000-2900099"}
	if insecure {
		args = append(args, "--insecure-no-sandbox")
	}
	go func() {
		done <- Run(ctx, env, args)
	}()
	urlRE := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	m, err := out.WaitMatch(wctx, urlRE)
	wcancel()
	if err != nil {
		t.Fatalf("no banner: %v: %q %q", err, out.String(), errb.String())
	}
	base := m[1]
	banner := []string{"token create --org", "/api/v1/agents", "SQLite", "sandbox:  each tool call in a bubblewrap sandbox", "1g memory, 1 CPU, 512 processes, 1024 open files, 10g disk"}
	health := `"sandbox":"enabled"`
	if insecure {
		banner = []string{"sandbox:  DISABLED (--insecure-no-sandbox)"}
		health = `"sandbox":"disabled"`
	}
	for _, want := range banner {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("banner lacks %q: %s", want, out.String())
		}
	}
	if warned := strings.Contains(errb.String(), "level=WARN msg=\"INSECURE"); warned != insecure {
		t.Errorf("insecure %v, warned %v: %s", insecure, warned, errb.String())
	}
	resp, err := http.Get(base + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), health) {
		t.Errorf("health = %s, want %s", b, health)
	}
	_, tokOut, _ := runCLI(context.Background(), dir, "platform", "token", "create", "--org", "acme", "--label", "l")
	req, _ := http.NewRequest("GET", base+"/api/v1/agents", nil)
	req.Header.Set("Authorization", "Bearer "+tokenRE.FindString(tokOut))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a token created while the platform runs: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 && code != 130 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("platform did not stop")
	}
	if want := "shutting down, waiting up to 10s for requests and agent operations in flight; 0 agents' runtimes keep running"; !strings.Contains(errb.String(), want) {
		t.Errorf("no shutdown notice %q: %s", want, errb.String())
	}
}

// TestPlatformLimitFlags: the runtimes' limit and isolation flags are
// checked before anything starts.
func TestPlatformLimitFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--runtime-memory", "lots"}, "--runtime-memory"},
		{[]string{"--runtime-disk", "-1"}, "--runtime-disk"},
		{[]string{"--runtime-nofile", "0"}, "--runtime-nofile"},
		{[]string{"--runtime-cpus", "0"}, "--runtime-cpus"},
		{[]string{"--runtime-uids", "0-10"}, "--runtime-uids"},
		{[]string{"--runtime-uids", "5000"}, "--runtime-uids"},
	} {
		code, _, stderr := runCLI(context.Background(), t.TempDir(), append([]string{"platform", "--port", "0"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d %q, want usage naming %s", tc.args, code, stderr, tc.want)
		}
	}
}
