package secrets

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/store"
)

func TestReservedNames(t *testing.T) {
	tests := []struct {
		key      string
		reserved bool
	}{
		// Loaders and interpreters' start-up hooks.
		{"LD_PRELOAD", true}, {"LD_LIBRARY_PATH", true}, {"LD_AUDIT", true}, {"DYLD_INSERT_LIBRARIES", true},
		{"PYTHONSTARTUP", true}, {"PYTHONPATH", true}, {"PYTHONHOME", true}, {"PYTHONINSPECT", true}, {"PYTHONUSERBASE", true},
		{"PERL5OPT", true}, {"PERL5LIB", true}, {"PERLLIB", true}, {"RUBYOPT", true}, {"RUBYLIB", true},
		{"NODE_OPTIONS", true}, {"NODE_PATH", true}, {"JAVA_TOOL_OPTIONS", true}, {"_JAVA_OPTIONS", true},
		{"GCONV_PATH", true}, {"GLIBC_TUNABLES", true},
		// The shell.
		{"PATH", true}, {"BASH_ENV", true}, {"ENV", true}, {"BASH_FUNC_ls%%", true}, {"BASH_FUNC_X", true},
		{"SHELLOPTS", true}, {"PS4", true}, {"IFS", true}, {"PROMPT_COMMAND", true},
		// Programs run on the tools' behalf.
		{"GIT_SSH", true}, {"GIT_SSH_COMMAND", true}, {"GIT_EXEC_PATH", true}, {"GIT_ASKPASS", true},
		{"GIT_CONFIG", true}, {"GIT_CONFIG_GLOBAL", true}, {"GIT_CONFIG_COUNT", true}, {"GIT_CONFIG_KEY_0", true},
		{"GIT_PROXY_COMMAND", true}, {"SSH_ASKPASS", true}, {"EDITOR", true}, {"PAGER", true}, {"LESSOPEN", true},
		// The sandbox's own settings, the egress proxy, the platform's.
		{"HOME", true}, {"TMPDIR", true}, {"SHELL", true},
		{"HTTP_PROXY", true}, {"HTTPS_PROXY", true}, {"ALL_PROXY", true}, {"NO_PROXY", true},
		{"http_proxy", true}, {"Https_Proxy", true}, {"no_proxy", true},
		{"AGENTHOST_CONTROL_TOKEN", true}, {"AGENTHOST_SANDBOX", true}, {"AGENTHOST_", true},
		// Ordinary secrets.
		{"ANTHROPIC_API_KEY", false}, {"OPENAI_API_KEY", false}, {"GITHUB_TOKEN", false}, {"GIT_AUTHOR_NAME", false},
		{"NPM_TOKEN", false}, {"DATABASE_URL", false}, {"MY_PATH", false}, {"PATHS", false}, {"LDAP_PASSWORD", false},
		{"HOMEPAGE_URL", false}, {"AGENTHOSTX", false}, {"PYTHON_VERSION", false}, {"ENVIRONMENT", false},
	}
	for _, tc := range tests {
		why, got := Reserved(tc.key)
		if got != tc.reserved || (got && why == "") {
			t.Errorf("Reserved(%q) = %q, %v; want reserved %v with a reason", tc.key, why, got, tc.reserved)
		}
		if !keyRE.MatchString(tc.key) {
			continue
		}
		err := CheckKey(tc.key)
		if (err != nil) != tc.reserved {
			t.Errorf("CheckKey(%q) = %v, want an error %v", tc.key, err, tc.reserved)
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.key+" is reserved: ")) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalid naming the key and why", tc.key, err)
		}
	}
}

// TestEnvLeavesOutReservedNames: a secret stored under a name reserved
// since never reaches a runtime.
func TestEnvLeavesOutReservedNames(t *testing.T) {
	ctx := context.Background()
	svc, box, st := newService(t, 1)
	st.CreateOrg(ctx, store.Org{ID: "o1", Name: "acme"})
	if _, _, err := svc.Put(ctx, "o1", "", "LD_PRELOAD", "/tmp/evil.so"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Put LD_PRELOAD = %v, want ErrInvalid", err)
	}
	for _, k := range []string{"LD_PRELOAD", "GOOD"} {
		if _, _, err := st.PutSecret(ctx, store.Secret{ID: "id-" + k, OrgID: "o1", Key: k, Ciphertext: box.Seal([]byte("v"), aad("o1", k))}); err != nil {
			t.Fatal(err)
		}
	}
	env, err := svc.Env(ctx, "o1", "")
	if err != nil || len(env) != 1 || env["GOOD"] != "v" {
		t.Fatalf("Env = %v, %v; want GOOD only", env, err)
	}
}

// FuzzCheckKey: an accepted key is a well-formed, unreserved name, and
// reservation does not depend on case.
func FuzzCheckKey(f *testing.F) {
	for _, k := range []string{"LD_PRELOAD", "ANTHROPIC_API_KEY", "http_proxy", "GIT_CONFIG_KEY_1", "AGENTHOST_X", "", "A-B", "BASH_FUNC_f%%"} {
		f.Add(k)
	}
	wellFormed := regexp.MustCompile(`^[A-Z0-9_]{1,256}$`)
	f.Fuzz(func(t *testing.T, key string) {
		_, reserved := Reserved(key)
		if _, upper := Reserved(strings.ToUpper(key)); upper != reserved {
			t.Fatalf("Reserved(%q) = %v but Reserved(upper) = %v", key, reserved, upper)
		}
		if err := CheckKey(key); err == nil {
			if !wellFormed.MatchString(key) || reserved {
				t.Fatalf("CheckKey(%q) accepted a malformed or reserved key", key)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("CheckKey(%q) = %v, not ErrInvalid", key, err)
		}
	})
}
