package host_test

import (
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/testutil"
)

// runA2AJS runs testdata/a2a/client.mjs with the SDK (installed in dir)
// on its module path and returns its JSON line.
func runA2AJS(t *testing.T, dir, mode, url string, env ...string) map[string]any {
	t.Helper()
	work := testutil.ModuleWorkDir(t, dir, filepath.Join("testdata", "a2a", "client.mjs"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "client.mjs", mode, url)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), env...)
	var m map[string]any
	testutil.RunJSON(t, cmd, &m)
	return m
}

// TestA2AJSClient: the A2A JS SDK's client reads the card, sends, streams
// in the same context, resubscribes to a running task and cancels
// another, against a real host.
func TestA2AJSClient(t *testing.T) {
	dir := testutil.A2AJS.Dir(t)
	h := startHost(t, "offline/slow")
	m := runA2AJS(t, dir, "roundtrip", h.URL)
	get := func(k string) map[string]any { v, _ := m[k].(map[string]any); return v }
	if c := get("card"); c["name"] != "translator" || c["url"] != h.URL+"/a2a" || c["streaming"] != true {
		t.Fatalf("card: %v", m)
	}
	if s := get("send"); s["state"] != "completed" || !strings.Contains(s["text"].(string), "offline") {
		t.Fatalf("send: %v", m)
	}
	if s := get("stream"); s["state"] != "completed" || s["final"] != true || !strings.Contains(s["text"].(string), "Ada") ||
		!strings.Contains(strings.Join(toStrings(s["kinds"]), ","), "status-update") {
		t.Fatalf("stream: %v", m)
	}
	if r := get("resubscribe"); r["started"] != "working" || r["state"] != "completed" || r["final"] != true {
		t.Fatalf("resubscribe: %v", m)
	}
	if c := get("cancel"); c["started"] != "working" || c["state"] != "canceled" || c["get"] != "canceled" {
		t.Fatalf("cancel: %v", m)
	}
}

// TestA2AJSSigned: under strict the JS client is refused unsigned and
// admitted when a fetch wrapper signs its requests (docs/a2a.md's code)
// as a whitelisted identity.
func TestA2AJSSigned(t *testing.T) {
	dir := testutil.A2AJS.Dir(t)
	id := newIdentity(t)
	hd := t.TempDir()
	writeFile(t, filepath.Join(hd, ".co", "host.yaml"), "trust: strict\nwhitelist:\n  - "+id.Address()+"\n")
	h := startTrustHost(t, hd)
	m := runA2AJS(t, dir, "signed", h.URL, "A2A_SEED="+hex.EncodeToString(id.Seed()))
	if m["required"] != true || !strings.Contains(m["anonymous"].(string), "signature required") {
		t.Fatalf("anonymous under strict: %v", m)
	}
	if m["from"] != id.Address() {
		t.Fatalf("signer %v, want %s", m["from"], id.Address())
	}
	s, _ := m["signed"].(map[string]any)
	if s["state"] != "completed" {
		t.Fatalf("signed: %v", m)
	}
	code, sess := signedGet(t, id, h.URL, "/sessions/"+s["contextId"].(string))
	wantStatus(t, code, 200, sess)
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
