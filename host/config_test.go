package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
)

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newIn(t testing.TB, dir string, opts ...host.Option) (*host.Server, error) {
	t.Helper()
	s, err := host.New(context.Background(), factory("offline/demo"), append([]host.Option{host.WithDir(dir), host.WithLogger(quietLogger())}, opts...)...)
	if s != nil {
		t.Cleanup(func() { s.Shutdown(t.Context()) })
	}
	return s, err
}

const fullConfig = `# every key
summary: I translate text
examples:
  - "Translate 'hello' to Spanish"
  - "What language is '你好' in?"
trust: open
port: 9123
workers: 3
result_ttl: 3600
relay_url: wss://relay.example/ws/announce
reload: false
co_dir: data
max_file_size: 5
max_files_per_request: 4
whitelist: whitelist.txt
blacklist:
  - "0xcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
model: offline/slow
system_prompt: prompt.md
name: helper
`

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".co", "host.yaml"), fullConfig)
	writeFile(t, filepath.Join(dir, ".co", "prompt.md"), "You translate.")
	writeFile(t, filepath.Join(dir, ".co", "whitelist.txt"), "0xabababababababababababababababababababababababababababababababab\n")
	s, err := newIn(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config()
	if c.Summary != "I translate text" || len(c.Examples) != 2 || c.Trust != "open" || c.Port != 9123 || c.Workers != 3 ||
		c.ResultTTL != time.Hour || c.RelayURL != "wss://relay.example/ws/announce" || c.CoDir != filepath.Join(dir, "data") ||
		c.MaxFileSizeMB != 5 || c.MaxFilesPerRequest != 4 || c.Model != "offline/slow" || c.SystemPrompt != "You translate." ||
		c.Name != "helper" || c.Whitelist.File != filepath.Join(dir, ".co", "whitelist.txt") || c.Blacklist.Addresses[0] != "0xcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd" {
		t.Fatalf("config: %+v", c)
	}
	if c.SystemPromptFile != filepath.Join(dir, ".co", "prompt.md") || c.File != filepath.Join(dir, ".co", "host.yaml") {
		t.Fatalf("files: %q %q", c.SystemPromptFile, c.File)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "keys", "agent.key")); err != nil {
		t.Fatalf("identity not in co_dir: %v", err)
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "custom.yaml"), "port: 9001\nworkers: 2\nsummary: from file\n")
	s, err := newIn(t, dir, host.WithConfigFile("custom.yaml"), host.WithPort(9002), host.WithCoDir(filepath.Join(dir, "co")))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config()
	if c.Port != 9002 || c.Workers != 2 || c.Summary != "from file" || c.MaxFileSizeMB != 10 || c.MaxFilesPerRequest != 10 ||
		c.ResultTTL != 24*time.Hour || c.Trust != "careful" || c.RelayURL != "" {
		t.Fatalf("precedence: %+v", c)
	}
	// No file at the default place is fine; a missing explicit one is not.
	if _, err := newIn(t, t.TempDir()); err != nil {
		t.Fatalf("no config: %v", err)
	}
	if _, err := newIn(t, dir, host.WithConfigFile("missing.yaml")); !errors.Is(err, host.ErrConfig) {
		t.Fatalf("missing explicit file: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"summary: hi\nprot: 8000\n", `host.yaml:2: key "prot": unknown key`},
		{"summary: hi\nport: abc\n", `host.yaml:2: key "port": want an integer`},
		{"port: 8000\nexamples: 5\n", `host.yaml:2: key "examples": want a list`},
		{"trust: sometimes\n", `host.yaml:1: key "trust": "sometimes" is not a trust level`},
		{"workers: 0\n", `host.yaml:1: key "workers": must be at least 1`},
		{"summary: x\n\nwhitelist: 5\n", `host.yaml:3: key "whitelist"`},
		{"reload: maybe\n", `host.yaml:1: key "reload": want true or false`},
		{"max_file_size: big\n", `host.yaml:1: key "max_file_size": want a number`},
		{"port: 70000\n", `host.yaml:1: key "port": 70000 is not a TCP port`},
		{"system_prompt: missing.md\n", `system_prompt: prompt file`},
		{"trust:\n  allow: [contact]\n  default: maybe\n", "default: want allow, deny or ask"},
		{"trust: sometimes.md\n", "trust policy file"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, ".co", "host.yaml"), c.yaml)
		_, err := newIn(t, dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.yaml, err, c.want)
		}
	}
}

// TestPromptTextAndNoDotEnv: an inline system prompt is the prompt, and
// New leaves the process environment alone even when the directory holds a
// .env file (the agenthost command loads .env; a library must not).
func TestPromptTextAndNoDotEnv(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".co", "host.yaml"), "system_prompt: |\n  You are terse.\n  Very terse.\n")
	writeFile(t, filepath.Join(dir, ".env"), "AGENTHOST_TEST_SECRET=s3cret\n")
	os.Unsetenv("AGENTHOST_TEST_SECRET")
	t.Cleanup(func() { os.Unsetenv("AGENTHOST_TEST_SECRET") })
	environ := os.Environ()
	s, err := newIn(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Config().SystemPrompt != "You are terse.\nVery terse.\n" || s.Config().SystemPromptFile != "" {
		t.Fatalf("inline prompt: %q", s.Config().SystemPrompt)
	}
	if v, ok := os.LookupEnv("AGENTHOST_TEST_SECRET"); ok {
		t.Fatalf("host.New loaded .env into the process environment (AGENTHOST_TEST_SECRET=%q)", v)
	}
	if !slices.Equal(environ, os.Environ()) {
		t.Fatal("host.New changed the process environment")
	}
}

func TestBadTrustOption(t *testing.T) {
	if _, err := newIn(t, t.TempDir(), host.WithTrust("sometimes")); !errors.Is(err, host.ErrConfig) {
		t.Fatalf("bad trust option: %v", err)
	}
}
