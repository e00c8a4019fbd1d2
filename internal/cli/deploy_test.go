package cli

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestSystemdUnits verifies deploy/systemd's units with systemd-analyze
// (any complaint fails, not only errors), their ExecStart pointed at a real
// agenthost; the platform's keeps its runtimes across restarts (KillMode
// and Delegate, docs/platform.md) and every unit gives a shutdown more time
// than its grace.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("AGENTHOST_TEST_TOOLS") != "" {
			t.Fatal("systemd-analyze is not installed: run ./scripts/service-tools.sh")
		}
		t.Skip("systemd-analyze is not installed: run ./scripts/service-tools.sh")
	}
	bin := agenthostBinary(t)
	units, _ := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "systemd", "*.service"))
	if len(units) < 3 {
		t.Fatalf("units: %v", units)
	}
	dir := t.TempDir()
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if !strings.Contains(text, "ExecStart=/usr/local/bin/agenthost ") {
			t.Errorf("%s: ExecStart is not /usr/local/bin/agenthost", u)
		}
		local := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(local, []byte(strings.ReplaceAll(text, "/usr/local/bin/agenthost", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", local).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(u), err, out)
		}
		if g := directive(text, "Environment=AGENTHOST_SHUTDOWN_GRACE"); g != "" {
			grace, _ := time.ParseDuration(g)
			stop, _ := time.ParseDuration(directive(text, "TimeoutStopSec"))
			if stop <= grace {
				t.Errorf("%s: TimeoutStopSec %s is not longer than the shutdown grace %s", filepath.Base(u), stop, grace)
			}
		}
		if strings.Contains(u, "platform") && (directive(text, "KillMode") != "process" || directive(text, "Delegate") != "yes") {
			t.Errorf("%s: want KillMode=process and Delegate=yes, so runtimes outlive a restart", filepath.Base(u))
		}
	}
}

// directive is the value of the last line "key=value" of a unit.
func directive(unit, key string) string {
	m := regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(key)+`=(.*)$`).FindAllStringSubmatch(unit, -1)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[len(m)-1][1])
}

// TestComposeFile loads compose.yaml with compose-go, the Compose
// Specification's reference loader (schema, interpolation, profiles), as
// `docker compose` would with the variables it asks for: the platform
// with PostgreSQL and the engine's socket by default, the host and relay
// with --profile host; every agenthost service gives a shutdown more time
// than its grace; required variables missing are an error that names them.
func TestComposeFile(t *testing.T) {
	root := repoRoot(t)
	env := []string{"AGENTHOST_MASTER_KEY=00", "POSTGRES_PASSWORD=pw", "DOCKER_GID=998"}
	load := func(env []string, profiles ...string) (*types.Project, error) {
		opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml")},
			cli.WithWorkingDirectory(root), cli.WithEnv(env), cli.WithProfiles(profiles), cli.WithName("agenthost"))
		if err != nil {
			return nil, err
		}
		return cli.ProjectFromOptions(context.Background(), opts)
	}
	p, err := load(env)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.ServiceNames(); !slices.Equal(got, []string{"platform", "postgres"}) {
		t.Errorf("default services: %v", got)
	}
	plat := p.Services["platform"]
	if !slices.Equal(plat.Command, types.ShellCommand{"platform"}) || plat.NetworkMode != "host" ||
		*plat.Environment["AGENTHOST_DRIVER"] != "docker" ||
		*plat.Environment["AGENTHOST_DATABASE"] != "postgres://agenthost:pw@127.0.0.1:5432/agenthost?sslmode=disable" ||
		!slices.Contains(plat.GroupAdd, "998") || plat.DependsOn["postgres"].Condition != types.ServiceConditionHealthy {
		t.Errorf("platform service: %+v", plat)
	}
	sock := false
	for _, v := range plat.Volumes {
		sock = sock || v.Source == "/var/run/docker.sock" && v.Target == "/var/run/docker.sock"
	}
	if !sock {
		t.Errorf("platform service lacks the engine's socket: %+v", plat.Volumes)
	}
	// Every variable the services set names a flag of their command.
	for _, s := range p.Services {
		checkServiceEnv(t, s)
	}

	p, err = load(env, "host")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.ServiceNames(); !slices.Equal(got, []string{"host", "platform", "postgres", "relay"}) {
		t.Errorf("--profile host services: %v", got)
	}
	for _, s := range p.Services {
		checkServiceEnv(t, s)
	}

	if _, err := load(nil); err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD") && !strings.Contains(err.Error(), "AGENTHOST_MASTER_KEY") {
		t.Errorf("without the required variables: %v", err)
	}
}

// checkServiceEnv: an agenthost service's AGENTHOST_* variables are flags
// of its command, and its stop grace period outlasts its shutdown grace.
func checkServiceEnv(t *testing.T, s types.ServiceConfig) {
	t.Helper()
	if len(s.Command) == 0 || commands[s.Command[0]] == nil {
		return // not agenthost
	}
	c := commands[s.Command[0]]
	known := map[string]bool{"AGENTHOST_MASTER_KEY": true}
	for _, f := range append(flagNames(c), "log-format", "log-level") {
		for _, v := range envVars(c, f) {
			known[v] = true
		}
	}
	for k := range s.Environment {
		if strings.HasPrefix(k, EnvPrefix) && !known[k] {
			t.Errorf("service %s sets %s, which no flag of %q reads", s.Name, k, s.Command[0])
		}
	}
	if g := s.Environment["AGENTHOST_SHUTDOWN_GRACE"]; g != nil {
		grace, _ := time.ParseDuration(*g)
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= grace {
			t.Errorf("service %s: stop_grace_period %v is not longer than its shutdown grace %s", s.Name, s.StopGracePeriod, grace)
		}
	}
}

// flagNames lists a command's own flags.
func flagNames(c *Command) []string {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	if c.Flags != nil {
		c.Flags(fs)
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}
