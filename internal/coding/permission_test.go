package coding

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything at all / here", true},
		{"git *", "git status", true},
		{"git *", "git", true},
		{"git *", "gitk", false},
		{"git status *", "git status --short", true},
		{"rm *", "rm -rf /", true},
		{"rm *", "echo rm", false},
		{"*.md", "README.md", true},
		{"*.md", "docs/guide/intro.md", true},
		{"*.md", "README.mdx", false},
		{"src/*", "src/a/b.go", true},
		{"?s", "ls", true},
		{"?s", "lss", false},
		{"?", "é", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
		{`ls \*.go`, "ls *.go", true},
		{`ls \*.go`, "ls a.go", false},
		{`a\?`, "a?", true},
		{`a\?`, "ab", false},
		{`back\\slash`, `back\slash`, true},
		{"https://github.com/*", "https://github.com/a/b", true},
		{"https://github.com/*", "https://evil.com/github.com/", false},
	}
	for _, tc := range tests {
		if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestRulesEvaluate(t *testing.T) {
	rules, err := NewRules(
		Rule{"bash", "git *", Allow},
		Rule{"bash", "git push *", Ask},
		Rule{"bash", "rm *", Deny},
		Rule{"write", "*.md", Allow},
		Rule{"webfetch", "https://docs.example.com/*", Allow},
		Rule{"read", "secrets/*", Deny},
		Rule{"*", "*.env", Deny},
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		permission string
		patterns   []string
		want       Action
	}{
		{"bash", []string{"ls -la"}, Ask},
		{"bash", []string{"git status"}, Allow},
		{"bash", []string{"git push origin main"}, Ask},
		{"bash", []string{"rm -rf build"}, Deny},
		{"write", []string{"notes.md"}, Allow},
		{"write", []string{"docs/a.md"}, Allow},
		{"write", []string{"main.go"}, Ask},
		{"edit", []string{"notes.md"}, Ask},
		{"edit", []string{"prod.env"}, Deny},
		{"webfetch", []string{"https://docs.example.com/x"}, Allow},
		{"webfetch", []string{"https://other.example.com/"}, Ask},
		{"read", []string{"main.go"}, Allow},
		{"read", []string{"secrets/key"}, Deny},
		{"glob", []string{"."}, Allow},
		{"grep", []string{"src"}, Allow},
		{"list", []string{"."}, Allow},
		{"question", []string{"*"}, Allow},
		{"unknown-tool", []string{"*"}, Ask},
		{"write", []string{"a.md", "b.go"}, Ask},
		{"bash", []string{"git status", "rm x"}, Deny},
		{"bash", nil, Ask},
	}
	for _, tc := range tests {
		if got, _ := rules.Evaluate(tc.permission, tc.patterns...); got != tc.want {
			t.Errorf("Evaluate(%s, %q) = %s, want %s", tc.permission, tc.patterns, got, tc.want)
		}
	}
	_, why := rules.Evaluate("bash", "rm -rf build")
	if why != (Rule{"bash", "rm *", Deny}) {
		t.Errorf("deciding rule = %+v", why)
	}
}

func TestRulesRemember(t *testing.T) {
	rules, _ := NewRules()
	if got, _ := rules.Evaluate("bash", "ls *.go"); got != Ask {
		t.Fatalf("before: %s", got)
	}
	added := rules.Remember("bash", "ls *.go")
	if len(added) != 1 || added[0] != (Rule{"bash", `ls \*.go`, Allow}) {
		t.Fatalf("added = %+v", added)
	}
	if again := rules.Remember("bash", "ls *.go"); len(again) != 0 {
		t.Fatalf("remembered twice: %+v", again)
	}
	if got, _ := rules.Evaluate("bash", "ls *.go"); got != Allow {
		t.Errorf("remembered command: %s", got)
	}
	if got, _ := rules.Evaluate("bash", "ls a.go"); got != Ask {
		t.Errorf("a wildcard in a remembered command widened it: %s", got)
	}
	if got, _ := rules.Evaluate("write", "ls *.go"); got != Ask {
		t.Errorf("remembered for another permission: %s", got)
	}
	// The remembered rules round-trip through JSON into a new policy.
	b, err := json.Marshal(rules.Remembered())
	if err != nil {
		t.Fatal(err)
	}
	var back []Rule
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	restored, err := NewRules(back...)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := restored.Evaluate("bash", "ls *.go"); got != Allow {
		t.Errorf("after restore: %s", got)
	}
	if n := len(restored.All()); n != len(DefaultRules())+1 {
		t.Errorf("All has %d rules", n)
	}
}

func TestParseRules(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Rule
		err  string
	}{
		{"object form keeps order", `{"bash": {"*": "ask", "git *": "allow", "rm *": "deny"}, "write": "allow", "edit": {"*.md": "allow"}}`,
			[]Rule{{"bash", "*", Ask}, {"bash", "git *", Allow}, {"bash", "rm *", Deny}, {"write", "*", Allow}, {"edit", "*.md", Allow}}, ""},
		{"list form", `[{"permission":"bash","pattern":"make *","action":"allow"}]`, []Rule{{"bash", "make *", Allow}}, ""},
		{"empty", ``, nil, ""},
		{"null", `null`, nil, ""},
		{"bad action", `{"bash": "maybe"}`, nil, "not allow, ask or deny"},
		{"bad nested action", `{"bash": {"x": "sure"}}`, nil, "not allow, ask or deny"},
		{"bad value", `{"bash": 3}`, nil, "want an action"},
		{"bad json", `{"bash": `, nil, "permission rules"},
		{"not an object", `"allow"`, nil, "want an object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRules([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseRules = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	// Later entries refine earlier ones.
	parsed, _ := ParseRules([]byte(`{"bash": {"*": "allow", "rm *": "deny"}}`))
	rules, err := NewRules(parsed...)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := rules.Evaluate("bash", "ls"); a != Allow {
		t.Errorf("ls: %s", a)
	}
	if a, _ := rules.Evaluate("bash", "rm -f x"); a != Deny {
		t.Errorf("rm: %s", a)
	}
	if _, err := NewRules(Rule{"", "*", Allow}); err == nil {
		t.Error("rule without permission accepted")
	}
}
