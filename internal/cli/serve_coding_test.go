package cli

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/testutil"
)

var codingRE = regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+) \(workspace (.+)\)`)

// TestServeRoleCoding runs `agenthost serve --role coding` in-process: the
// environment configures it, flags override, and it stops with its context.
func TestServeRoleCoding(t *testing.T) {
	ws := t.TempDir()
	env := map[string]string{"AGENTHOST_WORKSPACE": "ignored-by-the-flag", "AGENTHOST_CONTROL_TOKEN": "tok", "AGENTHOST_MODEL": "offline/demo"}
	var out, errb testutil.Buffer
	e := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }, Dir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Run(ctx, e, []string{"serve", "--role", "coding", "--port", "0", "--workspace", ws}) }()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	m, err := out.WaitMatch(wctx, codingRE)
	wcancel()
	if err != nil {
		cancel()
		t.Fatalf("no listening line: %v: %s %s", err, out.String(), errb.String())
	}
	if m[2] != ws {
		t.Fatalf("workspace %q, want the flag's %q", m[2], ws)
	}
	req, _ := http.NewRequest("GET", m[1]+"/control/status", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case code := <-done:
		if code != 130 && code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve --role coding did not stop")
	}
	if code := Run(context.Background(), e, []string{"serve", "--role", "chef"}); code != 2 {
		t.Fatalf("unknown role: exit %d", code)
	}
}
