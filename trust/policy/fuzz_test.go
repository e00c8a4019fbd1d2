package policy

import (
	"strings"
	"testing"

	"github.com/agenthost/agenthost/trust"
	"github.com/goccy/go-yaml"
)

// FuzzParseList checks list parsing never panics and that listed addresses
// match.
func FuzzParseList(f *testing.F) {
	f.Add("# comment\n" + addrA + " # trailing\n\n0xabc*\n")
	f.Add("*\n")
	f.Add("0x" + strings.Repeat("A", 64) + "\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		l, err := ParseList("fuzz", strings.NewReader(text))
		if err != nil {
			return
		}
		for _, line := range strings.Split(text, "\n") {
			line, _, _ = strings.Cut(line, "#")
			if a, err := trust.NormalizeAddress(strings.TrimSpace(line)); err == nil && !l.Match(a) {
				t.Fatalf("listed %s does not match", a)
			}
		}
		_ = l.Match(addrB)
	})
}

// FuzzParsePolicy checks that whatever YAML parses into a policy is valid
// and decides every level. Strings go through the markdown parser only, so
// the fuzzer never opens files.
func FuzzParsePolicy(f *testing.F) {
	f.Add(seedPolicyYAML)
	f.Add("strict")
	f.Add("---\nallow: [whitelisted]\n---\nI trust contacts.")
	f.Add("{allow: [0xab*], anonymous: ask, onboard: {payment: 3}}")
	f.Fuzz(func(t *testing.T, text string) {
		var v any
		if yaml.Unmarshal([]byte(text), &v) != nil {
			return
		}
		var p *Policy
		var err error
		if s, ok := v.(string); ok {
			p, err = ParseMarkdown(s)
		} else {
			p, err = FromValue(v, "")
		}
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed policy invalid: %v (%+v)", err, p)
		}
		for _, l := range []Level{LevelAnonymous, LevelStranger, LevelContact, LevelWhitelisted, LevelBlocked} {
			addr := addrA
			if l == LevelAnonymous {
				addr = ""
			}
			d := p.Evaluate(addr, l)
			switch d.Outcome {
			case OutcomeAllow, OutcomeDeny, OutcomeOnboard, OutcomeAsk:
			default:
				t.Fatalf("outcome %q", d.Outcome)
			}
			if l == LevelBlocked && d.Allowed() {
				t.Fatal("a blocked caller was admitted")
			}
		}
	})
}

// FuzzParseVerdict checks that a verdict is only ever read from a JSON
// boolean.
func FuzzParseVerdict(f *testing.F) {
	f.Add(`{"allow": true, "reason": "ok"}`)
	f.Add("```json\n{\"allow\": false}\n```")
	f.Fuzz(func(t *testing.T, text string) {
		allow, _, err := ParseVerdict(text)
		if err != nil && allow {
			t.Fatal("allowed with an error")
		}
		if allow && !strings.Contains(text, "true") {
			t.Fatalf("allowed without a true in %q", text)
		}
	})
}
