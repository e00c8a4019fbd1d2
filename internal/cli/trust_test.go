package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

func TestKeysCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	code, out, errb := hostCmd(ctx, dir, "", "keys")
	addr := strings.TrimSpace(out.String())
	if code != 0 || len(addr) != 66 || !strings.HasPrefix(addr, "0x") || !strings.Contains(errb.String(), "created") {
		t.Fatalf("keys: %d %q %q", code, out, errb)
	}
	code, out, errb = hostCmd(ctx, dir, "", "keys", "show")
	if code != 0 || strings.TrimSpace(out.String()) != addr || errb.String() != "" {
		t.Fatalf("keys show: %d %q %q", code, out, errb)
	}
	id, err := trust.LoadIdentity(filepath.Join(dir, ".co"))
	if err != nil {
		t.Fatal(err)
	}
	seedHex := strings.TrimSpace(strings.ToLower(hexOf(id.Seed())))
	if strings.Contains(out.String()+errb.String(), seedHex) {
		t.Fatal("keys show printed the private key")
	}
	code, out, errb = hostCmd(ctx, dir, "", "keys", "export")
	if code != 0 || strings.TrimSpace(out.String()) != seedHex || !strings.Contains(errb.String(), "private key") {
		t.Fatalf("keys export: %d %q %q", code, out, errb)
	}
	if code, _, errb = hostCmd(ctx, dir, "", "keys", "export", "--out", "key.txt"); code != 0 {
		t.Fatalf("export --out: %s", errb)
	}
	if st, err := os.Stat(filepath.Join(dir, "key.txt")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("exported file: %v %v", st, err)
	}

	// Import into another project: from a file, and from stdin.
	other := t.TempDir()
	code, out, errb = hostCmd(ctx, other, "", "keys", "import", filepath.Join(dir, "key.txt"))
	if code != 0 || !strings.Contains(out.String(), addr) {
		t.Fatalf("import: %d %q %q", code, out, errb)
	}
	if _, out, _ = hostCmd(ctx, other, "", "keys"); strings.TrimSpace(out.String()) != addr {
		t.Fatalf("imported address %q, want %s", out, addr)
	}
	fresh, _ := trust.NewIdentity()
	code, _, errb = hostCmd(ctx, other, hexOf(fresh.Seed())+"\n", "keys", "import", "-")
	if code != 1 || !strings.Contains(errb.String(), "--force") {
		t.Fatalf("import over a different key: %d %q", code, errb)
	}
	code, out, _ = hostCmd(ctx, other, "0x"+hexOf(fresh.Seed()), "keys", "import", "--force", "-")
	if code != 0 || !strings.Contains(out.String(), fresh.Address()) {
		t.Fatalf("import --force: %d %q", code, out)
	}
	raw := filepath.Join(other, ".co", trust.KeyFile)
	if code, _, errb = hostCmd(ctx, dir, "", "keys", "import", "--force", raw); code != 0 {
		t.Fatalf("import of a raw agent.key: %s", errb)
	}
	if code, _, _ = hostCmd(ctx, dir, "not a key", "keys", "import", "-"); code != 1 {
		t.Fatal("imported garbage")
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func TestTrustAndCreditsCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	caller, _ := trust.NewIdentity()
	addr := caller.Address()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"trust", "promote", addr}, "is now contact"},
		{[]string{"trust", "promote", strings.ToUpper(addr[2:])}, ""}, // not an address: usage
		{[]string{"trust", "promote", addr}, "is now whitelisted"},
		{[]string{"trust", "demote", addr}, "is now contact"},
		{[]string{"trust", "list"}, "contact      " + addr},
		{[]string{"trust", "block", addr}, "is now blocked"},
		{[]string{"trust", "unblock", addr}, "is now stranger"},
		{[]string{"credits", "grant", addr, "7"}, "has 7 credits"},
		{[]string{"credits", "grant", addr, "3"}, "has 10 credits"},
		{[]string{"credits", "balance", addr}, "has 10 credits"},
		{[]string{"credits", "grant", addr, "-1"}, ""},
	} {
		code, out, errb := hostCmd(ctx, dir, "", c.args...)
		if c.want == "" {
			if code != 2 {
				t.Errorf("%v: exit %d, want a usage error: %s", c.args, code, errb)
			}
			continue
		}
		if code != 0 || !strings.Contains(out.String(), c.want) {
			t.Errorf("%v: exit %d, %q %q; want %q", c.args, code, out, errb, c.want)
		}
	}
}

// TestTrustCommandRemote: signed admin operations to a running host.
func TestTrustCommandRemote(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := host.New(context.Background(), func() (*agent.Agent, error) { return agent.New("a", agent.WithModel("offline/demo")) },
		host.WithDir(dir), host.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s.Shutdown(sctx)
		ts.Close()
	}()
	caller, _ := trust.NewIdentity()
	code, out, errb := hostCmd(ctx, dir, "", "trust", "block", caller.Address(), "--url", ts.URL)
	if code != 0 || !strings.Contains(out.String(), "is now blocked") {
		t.Fatalf("remote block: %d %q %q", code, out, errb)
	}
	// The running host refuses the blocked caller at once.
	env, _ := trust.Sign(caller, trust.NewPayload(s.Address(), time.Now(), map[string]any{"prompt": "hi"}))
	if code := postEnvelope(t, ts.URL, env); code != 403 {
		t.Fatalf("blocked caller: status %d", code)
	}
	// Another project's key is not the host's.
	other := t.TempDir()
	hostCmd(ctx, other, "", "keys")
	code, _, errb = hostCmd(ctx, other, "", "trust", "unblock", caller.Address(), "--url", ts.URL)
	if code != 1 || !strings.Contains(errb.String(), "401") {
		t.Fatalf("foreign key: %d %q", code, errb)
	}
}

func postEnvelope(t *testing.T, url string, env trust.Envelope) int {
	t.Helper()
	b, _ := json.Marshal(env)
	resp, err := http.Post(url+"/input", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
