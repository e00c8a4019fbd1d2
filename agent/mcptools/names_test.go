package mcptools

import (
	"regexp"
	"strings"
	"testing"
)

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func TestToolName(t *testing.T) {
	long := strings.Repeat("a", 70)
	for _, tc := range []struct{ prefix, name, want string }{
		{"fs_", "read_file", "fs_read_file"},
		{"my_server_v2_", "get.thing/now", "my_server_v2_get_thing_now"},
		{"x_", "", "x__"},
	} {
		if got := toolName(tc.prefix, tc.name); got != tc.want {
			t.Errorf("toolName(%q, %q) = %q, want %q", tc.prefix, tc.name, got, tc.want)
		}
	}
	// A long name keeps its start and ends with a hash of the whole.
	got := toolName("x_", long)
	if len(got) != 64 || !strings.HasPrefix(got, "x_"+long[:53]+"_") || !validName.MatchString(got) {
		t.Errorf("long name: %q", got)
	}
	if toolName("x_", long+"1") == toolName("x_", long+"2") {
		t.Error("two long names that share a start collide")
	}
}

// FuzzToolName: every name a server can send becomes one providers
// accept.
func FuzzToolName(f *testing.F) {
	for _, s := range []string{"read_file", "", "ä/ö", strings.Repeat("z", 200), "a b\x00c"} {
		f.Add("srv", s)
	}
	f.Fuzz(func(t *testing.T, server, name string) {
		if got := toolName(sanitize(server)+"_", name); !validName.MatchString(got) {
			t.Fatalf("toolName(%q, %q) = %q", server, name, got)
		}
	})
}

// FuzzExpand: {env:NAME} expansion either fails or leaves no reference
// that names a set variable, and never panics.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"Bearer {env:TOKEN}", "{env:}", "{env:A}{env:B}", "{{env:TOKEN}}", "plain", "{env:1x}"} {
		f.Add(s)
	}
	lookup := func(k string) (string, bool) {
		if k == "TOKEN" {
			return "{env:TOKEN}", true // a value is not expanded again
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := expand(s, lookup)
		if err != nil {
			return
		}
		if strings.Count(out, "{env:TOKEN}") != strings.Count(s, "{env:TOKEN}") {
			t.Fatalf("expand(%q) = %q", s, out)
		}
	})
}
