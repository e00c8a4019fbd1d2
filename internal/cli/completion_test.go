package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// shell finds a shell for the completion tests: scripts/service-tools.sh
// installs zsh and fish, so under CI (or once it ran) a missing one fails.
func shell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("AGENTHOST_TEST_TOOLS") != "" {
			t.Fatalf("%s is not installed: run ./scripts/service-tools.sh", name)
		}
		t.Skipf("%s is not installed: run ./scripts/service-tools.sh", name)
	}
	return p
}

func completionScript(t *testing.T, sh string) string {
	t.Helper()
	code, out, errb := runEnv(context.Background(), t, nil, "completion", sh)
	if code != 0 {
		t.Fatalf("completion %s: exit %d %s", sh, code, errb)
	}
	path := filepath.Join(t.TempDir(), "agenthost."+sh)
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runShell(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
	}
	return string(out)
}

// TestCompletion checks each script with its shell's own parser, then
// asks bash and fish for completions: commands, flags (global ones
// included), flag values, subcommands two levels deep.
func TestCompletion(t *testing.T) {
	if code, _, errb := runEnv(context.Background(), t, nil, "completion", "tcsh"); code != 2 || !strings.Contains(errb.String(), "bash, zsh or fish") {
		t.Fatalf("unknown shell: %d %s", code, errb)
	}

	t.Run("bash", func(t *testing.T) {
		bash := shell(t, "bash")
		script := completionScript(t, "bash")
		runShell(t, bash, "-n", script)
		for _, tc := range []struct {
			words []string
			want  []string
		}{
			{[]string{"pla"}, []string{"platform"}},
			{[]string{"serve", "--shutdown-g"}, []string{"--shutdown-grace"}},
			{[]string{"relay", "--log-"}, []string{"--log-format", "--log-level"}},
			{[]string{"serve", "--log-level", ""}, []string{"debug", "info", "warn", "error"}},
			{[]string{"platform", "--driver", "d"}, []string{"docker"}},
			{[]string{"platform", ""}, []string{"token"}},
			{[]string{"platform", "--port", "80", "token", "r"}, []string{"revoke"}},
			{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}},
			{[]string{"help", "se"}, []string{"serve", "sessions"}},
		} {
			line := "agenthost " + strings.Join(tc.words, " ")
			words := append([]string{"agenthost"}, tc.words...)
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = shellQuote(w)
			}
			prog := "source " + shellQuote(script) + "; COMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" +
				itoa(len(words)-1) + `; _agenthost; printf '%s\n' "${COMPREPLY[@]}"`
			got := strings.Fields(runShell(t, bash, "-c", prog))
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%q: bash offers %v, want %v", line, got, want)
			}
		}
	})

	t.Run("zsh", func(t *testing.T) {
		zsh := shell(t, "zsh")
		script := completionScript(t, "zsh")
		runShell(t, zsh, "-n", script)
		// Sourced after compinit, it registers itself for agenthost.
		out := runShell(t, zsh, "-f", "-c", "autoload -U compinit; compinit -u -D; source "+shellQuote(script)+"; print -r -- $_comps[agenthost]")
		if strings.TrimSpace(out) != "_agenthost" {
			t.Errorf("zsh: agenthost completes with %q", out)
		}
	})

	t.Run("fish", func(t *testing.T) {
		fish := shell(t, "fish")
		script := completionScript(t, "fish")
		runShell(t, fish, "--no-execute", script)
		for _, tc := range []struct {
			line string
			want []string
		}{
			{"agenthost pla", []string{"platform"}},
			{"agenthost serve --shutdown-g", []string{"--shutdown-grace"}},
			{"agenthost relay --log-level ", []string{"debug", "info", "warn", "error"}},
			{"agenthost platform token ", []string{"create", "list", "revoke"}},
			{"agenthost completion ", []string{"bash", "zsh", "fish"}},
		} {
			out := runShell(t, fish, "--no-config", "-c", "source "+fishQuote(script)+"; complete -C "+fishQuote(tc.line))
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%q: fish offers %v, want %v", tc.line, got, want)
			}
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
