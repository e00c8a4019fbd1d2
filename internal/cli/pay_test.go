package cli

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/demo"
	"github.com/agenthost/agenthost/trust"
)

// TestCallPay: `agenthost call --pay N` onboards with an agent whose policy
// admits strangers for a payment from the credits the operator granted;
// without --pay, or with too little, the error says what the agent asks.
func TestCallPay(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".co"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".co", "host.yaml"), []byte("trust:\n  onboard:\n    payment: 10\n  default: deny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := host.New(context.Background(), func() (*agent.Agent, error) { return demo.New("calculator", "offline/demo", "") },
		host.WithDir(dir), host.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	keys := filepath.Join(t.TempDir(), "me")
	me, _, err := trust.LoadOrCreateIdentity(keys)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errb := hostCmd(ctx, dir, "", "call", ts.URL, "use add on 2 and 3", "--keys", keys)
	if code != 1 || !strings.Contains(errb.String(), "--pay 10") {
		t.Fatalf("without --pay: %d %s", code, errb)
	}
	code, _, errb = hostCmd(ctx, dir, "", "call", ts.URL, "use add on 2 and 3", "--keys", keys, "--pay", "5")
	if code != 1 || !strings.Contains(errb.String(), "asks 10 credits") {
		t.Fatalf("--pay 5: %d %s", code, errb)
	}
	code, _, errb = hostCmd(ctx, dir, "", "call", ts.URL, "use add on 2 and 3", "--keys", keys, "--pay", "10")
	if code != 1 || !strings.Contains(strings.ToLower(errb.String()), "credit") {
		t.Fatalf("--pay 10 with no credits granted: %d %s", code, errb)
	}
	if code, out, errb := hostCmd(ctx, dir, "", "credits", "grant", me.Address(), "12"); code != 0 {
		t.Fatalf("credits grant: %d %s %s", code, out, errb)
	}
	code, out, errb := hostCmd(ctx, dir, "", "call", ts.URL, "use add on 2 and 3", "--keys", keys, "--pay", "10")
	if code != 0 || !strings.Contains(out.String(), "5") {
		t.Fatalf("--pay 10: %d\nstdout: %s\nstderr: %s", code, out, errb)
	}
	if _, out, _ := hostCmd(ctx, dir, "", "credits", "balance", me.Address()); !strings.Contains(out.String(), "has 2 credits") {
		t.Fatalf("balance after paying 10 of 12: %s", out)
	}
	// A contact now: no payment the next time.
	if code, out, errb := hostCmd(ctx, dir, "", "call", ts.URL, "use add on 1 and 1", "--keys", keys); code != 0 || !strings.Contains(out.String(), "2") {
		t.Fatalf("as a contact: %d %s %s", code, out, errb)
	}
}
