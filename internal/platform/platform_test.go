package platform_test

import (
	"testing"

	"github.com/agenthost/agenthost/internal/platform"
)

// The default data directory does not depend on the working directory.
func TestDefaultDataDir(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name string
		env  func(string) string
		euid int
		want string
	}{
		{"override", env("AGENTHOST_DATA", "/srv/ah", "HOME", "/home/u"), 1000, "/srv/ah"},
		{"override as root", env("AGENTHOST_DATA", "/srv/ah"), 0, "/srv/ah"},
		{"root", env("HOME", "/root"), 0, "/var/lib/agenthost"},
		{"xdg", env("XDG_DATA_HOME", "/home/u/.data", "HOME", "/home/u"), 1000, "/home/u/.data/agenthost"},
		{"relative xdg ignored", env("XDG_DATA_HOME", "data", "HOME", "/home/u"), 1000, "/home/u/.local/share/agenthost"},
		{"home", env("HOME", "/home/u"), 1000, "/home/u/.local/share/agenthost"},
	} {
		if got := platform.DefaultDataDir(tc.env, tc.euid); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
