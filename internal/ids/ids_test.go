package ids

import "testing"

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := New()
		if !Valid(id) {
			t.Fatalf("New() = %q is not Valid", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "c", "x123456789012345678901234", "c12345678901234567890123A", "c1234567890123456789012345"} {
		if Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
}

// Valid reports whether s has the shape of an id.
func Valid(s string) bool {
	if len(s) != 25 || s[0] != 'c' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
