package coding

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Action is what a rule decides for a matching call.
type Action string

// The three actions: run without asking, ask a person, refuse.
const (
	Allow Action = "allow"
	Ask   Action = "ask"
	Deny  Action = "deny"
)

func (a Action) valid() bool { return a == Allow || a == Ask || a == Deny }

// Rule decides the calls of one permission whose pattern matches. In
// Permission and Pattern, * matches any run of characters (slashes and
// spaces included), ? matches one, and \ makes the next character literal;
// a pattern ending in " *" also matches without that tail, so "git *"
// covers a bare "git".
type Rule struct {
	Permission string `json:"permission"`
	Pattern    string `json:"pattern"`
	Action     Action `json:"action"`
}

// DefaultRules ask before anything that changes the workspace or reaches
// the network, and let reading and searching run freely. Any call no rule
// matches is asked about too.
func DefaultRules() []Rule {
	return []Rule{
		{"bash", "*", Ask},
		{"write", "*", Ask},
		{"edit", "*", Ask},
		{"webfetch", "*", Ask},
		{"read", "*", Allow},
		{"list", "*", Allow},
		{"glob", "*", Allow},
		{"grep", "*", Allow},
		{"question", "*", Allow},
	}
}

// Rules is the permission policy of one runtime: the defaults, then the
// configured rules, then what "always" replies remembered. The last rule
// that matches decides, so later rules refine earlier ones. Rules is safe
// for concurrent use, since sessions of one runtime share it.
type Rules struct {
	mu         sync.RWMutex
	rules      []Rule
	remembered []Rule
}

// NewRules returns DefaultRules followed by rules; pass remembered rules
// from an earlier run last so they keep their effect.
func NewRules(rules ...Rule) (*Rules, error) {
	for _, r := range rules {
		if !r.Action.valid() {
			return nil, fmt.Errorf("permission rule %s %q: action %q is not allow, ask or deny", r.Permission, r.Pattern, r.Action)
		}
		if r.Permission == "" {
			return nil, fmt.Errorf("permission rule %q: no permission", r.Pattern)
		}
	}
	return &Rules{rules: append(DefaultRules(), rules...)}, nil
}

// NewSessionRules returns the rules of one session: no defaults, only
// what "always" replies remembered for that session (remembered, from an
// earlier run, then Remember). They are consulted after the agent's rules
// (Rules.EvaluateWith).
func NewSessionRules(remembered ...Rule) *Rules {
	return &Rules{remembered: slices.Clone(remembered)}
}

// Evaluate returns the action for a call of permission on patterns and the
// rule that decided it (zero when none matched, which means Ask). With
// several patterns the strictest outcome wins: one denied pattern denies
// the call, one pattern needing approval needs approval.
func (r *Rules) Evaluate(permission string, patterns ...string) (Action, Rule) {
	return r.EvaluateWith(nil, permission, patterns...)
}

// EvaluateWith is Evaluate with also's remembered rules (a session's)
// after r's own.
func (r *Rules) EvaluateWith(also *Rules, permission string, patterns ...string) (Action, Rule) {
	r.mu.RLock()
	lists := [][]Rule{r.rules, r.remembered}
	r.mu.RUnlock()
	if also != nil {
		also.mu.RLock()
		lists = append(lists, also.remembered)
		also.mu.RUnlock()
	}
	if len(patterns) == 0 {
		patterns = []string{""}
	}
	worst, why := Allow, Rule{}
	for _, p := range patterns {
		act, rule := Ask, Rule{}
		for _, list := range lists {
			for _, ru := range list {
				if wildcardMatch(ru.Permission, permission) && wildcardMatch(ru.Pattern, p) {
					act, rule = ru.Action, ru
				}
			}
		}
		if severity(act) > severity(worst) || why == (Rule{}) && act == worst {
			worst, why = act, rule
		}
	}
	return worst, why
}

func severity(a Action) int {
	switch a {
	case Deny:
		return 2
	case Ask:
		return 1
	}
	return 0
}

// Remember allows later calls of permission on exactly these patterns, as
// an "always" reply asks. Wildcard characters in a pattern are taken
// literally, so approving `ls *.go` does not approve every ls. It returns
// the rules it added, for the caller to persist.
func (r *Rules) Remember(permission string, patterns ...string) []Rule {
	r.mu.Lock()
	defer r.mu.Unlock()
	var added []Rule
	for _, p := range patterns {
		ru := Rule{Permission: escapeWildcards(permission), Pattern: escapeWildcards(p), Action: Allow}
		if !slices.Contains(r.remembered, ru) {
			r.remembered = append(r.remembered, ru)
			added = append(added, ru)
		}
	}
	return added
}

// Remembered returns the rules "always" replies added, the part of the
// policy a runtime persists across restarts.
func (r *Rules) Remembered() []Rule {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.remembered)
}

// All returns every rule in evaluation order: defaults, configured,
// remembered.
func (r *Rules) All() []Rule {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append(slices.Clone(r.rules), r.remembered...)
}

// escapeWildcards makes s match only itself.
func escapeWildcards(s string) string {
	if !strings.ContainsAny(s, `*?\`) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if c == '*' || c == '?' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// wildcardMatch matches s against pattern (see Rule).
func wildcardMatch(pattern, s string) bool {
	if strings.HasSuffix(pattern, " *") && !strings.HasSuffix(pattern, `\ *`) && wildcardMatch(pattern[:len(pattern)-2], s) {
		return true
	}
	// Iterative matching with one backtrack point: the most recent star.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; {
			case c == '*':
				starP, starI = p, i
				p++
				continue
			case c == '?':
				p++
				_, n := utf8.DecodeRuneInString(s[i:])
				i += n
				continue
			case c == '\\' && p+1 < len(pattern):
				if pattern[p+1] == s[i] {
					p, i = p+2, i+1
					continue
				}
			case c == s[i]:
				p, i = p+1, i+1
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// ParseRules reads rules from configuration. Two forms are accepted: a
// list of Rule objects, or an object keyed by permission whose values are
// an action ("bash": "ask") or an object of pattern → action
// ({"bash": {"*": "ask", "git *": "allow"}}). Key order is kept, so later
// entries override earlier ones as they do in the list form.
func ParseRules(data []byte) ([]Rule, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	if data[0] == '[' {
		var rules []Rule
		if err := json.Unmarshal(data, &rules); err != nil {
			return nil, fmt.Errorf("permission rules: %w", err)
		}
		return rules, validateRules(rules)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var rules []Rule
	err := orderedObject(dec, func(perm string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch v := tok.(type) {
		case string:
			rules = append(rules, Rule{Permission: perm, Pattern: "*", Action: Action(v)})
			return nil
		case json.Delim:
			if v != '{' {
				break
			}
			return orderedObjectBody(dec, func(pattern string) error {
				var act string
				if err := dec.Decode(&act); err != nil {
					return fmt.Errorf("%s %q: %w", perm, pattern, err)
				}
				rules = append(rules, Rule{Permission: perm, Pattern: pattern, Action: Action(act)})
				return nil
			})
		}
		return fmt.Errorf("%s: want an action or an object of pattern to action", perm)
	})
	if err != nil {
		return nil, fmt.Errorf("permission rules: %w", err)
	}
	return rules, validateRules(rules)
}

func validateRules(rules []Rule) error {
	for _, r := range rules {
		if !r.Action.valid() {
			return fmt.Errorf("permission rule %s %q: action %q is not allow, ask or deny", r.Permission, r.Pattern, r.Action)
		}
		if r.Permission == "" {
			return fmt.Errorf("permission rule %q: no permission", r.Pattern)
		}
	}
	return nil
}

// orderedObject reads a JSON object key by key, calling value for each key
// with the decoder positioned at the value.
func orderedObject(dec *json.Decoder, value func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("want an object or a list, got %v", tok)
	}
	return orderedObjectBody(dec, value)
}

// orderedObjectBody reads the keys and values after an object's '{'.
func orderedObjectBody(dec *json.Decoder, value func(key string) error) error {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if err := value(key); err != nil {
			return err
		}
	}
	_, err := dec.Token() // the closing '}'
	return err
}
