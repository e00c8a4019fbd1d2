package capability

import (
	"strings"
	"testing"
)

func TestCapability(t *testing.T) {
	s := New([]byte("0123456789abcdef0123456789abcdef"))
	c := s.Mint("agent1", "ses_a")
	if len(c) != 43 || strings.ContainsAny(c, "+/=") {
		t.Fatalf("capability %q: want 43 URL-safe characters", c)
	}
	if !s.Check("agent1", "ses_a", c) {
		t.Fatal("a capability does not check against its own session")
	}
	if c2 := New([]byte("0123456789abcdef0123456789abcdef")).Mint("agent1", "ses_a"); c2 != c {
		t.Fatal("the same key must mint the same capability (replicas, restarts)")
	}
	for _, tc := range []struct{ agent, session, cap string }{
		{"agent1", "ses_b", c},      // another session
		{"agent2", "ses_a", c},      // another agent
		{"agent1ses_", "a", c},      // ids shifted across the separator
		{"agent1", "ses_a", c[:42]}, // truncated
		{"agent1", "ses_a", ""},
		{"agent1", "ses_a", strings.ToUpper(c)},
		{"", "", New(nil).Mint("", "")},
	} {
		if s.Check(tc.agent, tc.session, tc.cap) {
			t.Errorf("Check(%q, %q, %q) = true", tc.agent, tc.session, tc.cap)
		}
	}
	if New([]byte("another key.....................")).Check("agent1", "ses_a", c) {
		t.Error("a capability from another master key checks")
	}
}
