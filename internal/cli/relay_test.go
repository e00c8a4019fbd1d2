package cli

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/testutil"
)

var relayAddrRE = regexp.MustCompile(`agenthost relay on (\S+)`)

func TestRelayCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb testutil.Buffer
	go func() {
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Dir: t.TempDir()}
		done <- Run(ctx, env, []string{"relay", "--host", "127.0.0.1", "--port", "0", "--max-frame-mb", "1"})
	}()
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	m, err := out.WaitMatch(wctx, relayAddrRE)
	wcancel()
	if err != nil {
		t.Fatalf("relay did not start: %v: %s %s", err, out.String(), errb.String())
	}
	addr := m[1]
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"healthy"`) {
		t.Errorf("health: %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not stop")
	}
	if code, _, _ := hostCmd(context.Background(), t.TempDir(), "", "relay", "extra"); code != 2 {
		t.Errorf("relay with an argument: exit %d", code)
	}
}
