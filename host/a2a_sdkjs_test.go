package host_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// a2aJSDir is where scripts/service-a2a.sh installed the A2A JavaScript
// SDK; a missing one skips, or fails under CI.
func a2aJSDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("AGENTHOST_TEST_A2A_JS")
	if dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("AGENTHOST_TEST_A2A_JS is not set: run scripts/service-a2a.sh (make test does)")
		}
		t.Skip("the A2A JavaScript SDK is not installed: run scripts/service-a2a.sh")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node: %v", err)
	}
	return dir
}

// runA2AJS runs testdata/a2a/client.mjs with the SDK on its module path
// and returns its JSON line.
func runA2AJS(t *testing.T, dir, mode, url string, env ...string) map[string]any {
	t.Helper()
	script, err := filepath.Abs("testdata/a2a/client.mjs")
	if err != nil {
		t.Fatal(err)
	}
	// ES modules resolve packages from the script's directory upwards, not
	// NODE_PATH: run a copy next to the SDK's node_modules.
	work := t.TempDir()
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "node_modules"), filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "client.mjs"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "client.mjs", mode, url)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("a2a js %s: %v\n%s%s", mode, err, out.String(), errb.String())
	}
	line := strings.TrimSpace(out.String())
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("a2a js %s: %v in %q\n%s", mode, err, out.String(), errb.String())
	}
	return m
}

// TestA2AJSClient: the A2A JS SDK's client reads the card, sends, streams
// in the same context, resubscribes to a running task and cancels
// another, against a real host.
func TestA2AJSClient(t *testing.T) {
	dir := a2aJSDir(t)
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
	dir := a2aJSDir(t)
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
