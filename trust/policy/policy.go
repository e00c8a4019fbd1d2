// Package policy decides who may talk to an agent once package trust has
// proved who is talking: trust levels (anonymous, stranger, contact,
// whitelisted, blocked), presets (open, careful, strict) and policies in
// YAML, markdown or words, access lists, stored contacts, onboarding by
// invite code or payment, the judge of a natural-language policy with its
// cache and rate limits, and signed admin operations that promote, demote,
// block or unblock a caller.
//
// A host verifies a request with trust.Verifier, then asks a Gate:
//
//	m, err := verifier.Verify(ctx, body)  // package trust
//	d, err := gate.Decide(ctx, policy.Caller{Address: m.From})
package policy

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
)

// Level is a caller's standing with this agent. Precedence, highest first:
// blocked > whitelisted > contact > stranger. Unsigned callers are
// anonymous.
type Level string

// The caller levels.
const (
	LevelAnonymous   Level = "anonymous"
	LevelStranger    Level = "stranger"
	LevelContact     Level = "contact"
	LevelWhitelisted Level = "whitelisted"
	LevelBlocked     Level = "blocked"
)

// Action is what a policy does with callers its lists do not decide.
type Action string

// The policy actions.
const (
	ActionAllow Action = "allow"
	ActionDeny  Action = "deny"
	// ActionAsk asks the Judge, with the natural-language policy.
	ActionAsk Action = "ask"
)

// The trust levels a host is configured with, each a preset Policy.
const (
	PresetOpen    = "open"
	PresetCareful = "careful"
	PresetStrict  = "strict"
	// PresetCustom names every policy that is not a preset.
	PresetCustom = "custom"
)

// Onboarding says how a stranger becomes a contact.
type Onboarding struct {
	// InviteCodes are accepted invite codes (case-sensitive).
	InviteCodes []string
	// Payment is the number of credits a caller pays to become a contact;
	// zero disables payment.
	Payment int64
}

// Onboarding methods, as sent in ONBOARD_REQUIRED.
const (
	MethodInviteCode = "invite_code"
	MethodPayment    = "payment"
)

// Methods lists the enabled onboarding methods.
func (o Onboarding) Methods() []string {
	var m []string
	if len(o.InviteCodes) > 0 {
		m = append(m, MethodInviteCode)
	}
	if o.Payment > 0 {
		m = append(m, MethodPayment)
	}
	return m
}

// Enabled reports whether any onboarding method is enabled.
func (o Onboarding) Enabled() bool { return len(o.InviteCodes) > 0 || o.Payment > 0 }

// Policy is a trust policy (seed 002, "Advanced Trust Configuration"): who is
// allowed, who is denied, how strangers onboard, and what happens to
// everyone else. The levels open, careful and strict are presets of it.
type Policy struct {
	// Name is the preset's name, or PresetCustom.
	Name string
	// Allow lists groups (whitelisted, contact, stranger, anonymous) and
	// addresses or patterns that are admitted. Whitelisted callers are
	// always admitted unless denied.
	Allow []string
	// Deny lists groups and addresses or patterns that are refused. It is
	// checked before Allow, and blocked callers are always refused.
	Deny []string
	// Onboard says how strangers become contacts.
	Onboard Onboarding
	// Default is what happens to callers neither list decides.
	Default Action
	// Anonymous is what happens to unsigned callers neither list decides;
	// empty means Default.
	Anonymous Action
	// Prose is the natural-language policy the Judge applies for
	// ActionAsk.
	Prose string
}

// Groups that Allow and Deny entries may name.
var policyGroups = []string{string(LevelWhitelisted), string(LevelContact), string(LevelStranger), string(LevelBlocked), string(LevelAnonymous)}

// Preset returns a fresh copy of the policy of a trust level: open, careful
// (the default) or strict. All three refuse blocked callers and admit
// whitelisted ones and contacts; open and careful admit everyone else,
// signed or not; strict refuses strangers and unsigned callers.
func Preset(name string) (*Policy, bool) {
	p := &Policy{Name: name, Allow: []string{"whitelisted", "contact"}, Deny: []string{"blocked"}}
	switch name {
	case PresetOpen, PresetCareful:
		p.Default = ActionAllow
	case PresetStrict:
		p.Default = ActionDeny
	default:
		return nil, false
	}
	return p, true
}

// Default returns the careful preset.
func Default() *Policy {
	p, _ := Preset(PresetCareful)
	return p
}

// Prose returns the policy of a natural-language trust text: blocked
// callers are refused and whitelisted ones admitted without asking; every
// other caller, signed or not, is put to the Judge with text as the policy.
func Prose(text string) *Policy {
	return &Policy{
		Name:    PresetCustom,
		Allow:   []string{"whitelisted"},
		Deny:    []string{"blocked"},
		Default: ActionAsk,
		Prose:   strings.TrimSpace(text),
	}
}

// Validate checks a policy's actions, entries and onboarding.
func (p *Policy) Validate() error {
	switch p.Default {
	case ActionAllow, ActionDeny, ActionAsk:
	default:
		return fmt.Errorf("trust policy: default must be allow, deny or ask, not %q", p.Default)
	}
	switch p.Anonymous {
	case "", ActionAllow, ActionDeny, ActionAsk:
	default:
		return fmt.Errorf("trust policy: anonymous must be allow, deny or ask, not %q", p.Anonymous)
	}
	for _, l := range []struct {
		name    string
		entries []string
	}{{"allow", p.Allow}, {"deny", p.Deny}} {
		for i, e := range l.entries {
			if !slices.Contains(policyGroups, strings.ToLower(strings.TrimSpace(e))) && !isListEntry(e) {
				return fmt.Errorf("trust policy: %s entry %d is neither a group (%s) nor an address or pattern",
					l.name, i+1, strings.Join(policyGroups, ", "))
			}
		}
	}
	if p.Onboard.Payment < 0 {
		return fmt.Errorf("trust policy: onboard payment must not be negative")
	}
	for i, c := range p.Onboard.InviteCodes {
		if strings.TrimSpace(c) == "" {
			return fmt.Errorf("trust policy: invite code %d is empty", i+1)
		}
	}
	return nil
}

// Outcome is the kind of a Decision.
type Outcome string

// The decision outcomes.
const (
	OutcomeAllow Outcome = "allow"
	OutcomeDeny  Outcome = "deny"
	// OutcomeOnboard: the caller may be admitted after onboarding (an
	// invite code or a payment); a host answers with ONBOARD_REQUIRED or 403.
	OutcomeOnboard Outcome = "onboard"
	// OutcomeAsk: the Judge decides. Policy.Evaluate returns it;
	// Gate.Decide never does.
	OutcomeAsk Outcome = "ask"
)

// Decision is the answer of a trust policy for one caller.
type Decision struct {
	Outcome Outcome
	// Level is the caller's level.
	Level Level
	// Reason explains a denial or onboarding requirement. It is safe to
	// show the caller: it never quotes list contents.
	Reason string
	// SignatureRequired marks a denial that a signature could change: the
	// caller was anonymous. A host answers 401 rather than 403.
	SignatureRequired bool
	// Methods and PaymentAmount describe the onboarding on offer, for
	// OutcomeOnboard.
	Methods       []string
	PaymentAmount int64
	// ByDefault reports that no list decided: the policy's default did.
	ByDefault bool
	// Promoted reports that onboarding credentials in the request made the
	// caller a contact.
	Promoted bool
	// Judged reports that the Judge decided.
	Judged bool
	// Unavailable marks a denial because the policy could not be
	// evaluated (its judge is missing, failed or is busy): not the caller's
	// fault, and no signature or onboarding would change it. A host
	// answers 503 rather than 401 or 403.
	Unavailable bool
}

// Allowed reports whether the caller is admitted.
func (d Decision) Allowed() bool { return d.Outcome == OutcomeAllow }

// Evaluate applies the policy's fast rules to a caller (addr is "" for
// anonymous callers) whose level is known. Order: blocked callers and Deny
// entries are refused; whitelisted callers and Allow entries are admitted;
// everyone else gets the default — allow, ask (OutcomeAsk), or deny, which
// for a signed caller becomes OutcomeOnboard when onboarding is enabled.
func (p *Policy) Evaluate(addr string, level Level) Decision {
	d := Decision{Level: level}
	if level == LevelBlocked {
		d.Outcome, d.Reason = OutcomeDeny, "blocked by this agent"
		return d
	}
	if p.matchAny(p.Deny, addr, level) {
		d.Outcome, d.Reason = OutcomeDeny, "denied by this agent's trust policy"
		d.SignatureRequired = level == LevelAnonymous
		return d
	}
	if level == LevelWhitelisted || p.matchAny(p.Allow, addr, level) {
		d.Outcome = OutcomeAllow
		return d
	}
	d.ByDefault = true
	act := p.Default
	if level == LevelAnonymous && p.Anonymous != "" {
		act = p.Anonymous
	}
	switch act {
	case ActionAllow:
		d.Outcome = OutcomeAllow
	case ActionAsk:
		d.Outcome = OutcomeAsk
	default:
		p.refuse(&d)
	}
	return d
}

// refuse fills in a denial by default: a signature for anonymous callers,
// onboarding for strangers when enabled, or a plain denial.
func (p *Policy) refuse(d *Decision) {
	switch {
	case d.Level == LevelAnonymous:
		d.Outcome, d.SignatureRequired = OutcomeDeny, true
		d.Reason = "this agent only accepts signed requests"
	case p.Onboard.Enabled():
		d.Outcome, d.Methods, d.PaymentAmount = OutcomeOnboard, p.Onboard.Methods(), p.Onboard.Payment
		d.Reason = "onboarding required: " + onboardHint(p.Onboard)
	default:
		d.Outcome, d.Reason = OutcomeDeny, "not admitted by this agent's trust policy"
	}
}

func onboardHint(o Onboarding) string {
	var ways []string
	if len(o.InviteCodes) > 0 {
		ways = append(ways, "an invite code")
	}
	if o.Payment > 0 {
		ways = append(ways, fmt.Sprintf("a payment of %d credits", o.Payment))
	}
	return "send " + strings.Join(ways, " or ") + " in a signed request"
}

func (p *Policy) matchAny(entries []string, addr string, level Level) bool {
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		if slices.Contains(policyGroups, e) {
			if Level(e) == level {
				return true
			}
			continue
		}
		if addr != "" && matchGlob(e, strings.ToLower(addr)) {
			return true
		}
	}
	return false
}

// Parse reads a trust policy from YAML: the value of "trust:" in
// host.yaml. See FromValue. Relative file paths resolve against
// baseDir.
func Parse(data []byte, baseDir string) (*Policy, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("trust policy: %w", err)
	}
	return FromValue(v, baseDir)
}

// FromValue builds a policy from a decoded "trust:" value: nil (the
// careful preset), a string (see FromText), or a mapping with the keys
// allow, deny, onboard {invite_code, payment}, default (allow|deny|ask),
// anonymous (allow|deny|ask) and policy (natural-language text).
func FromValue(v any, baseDir string) (*Policy, error) {
	switch x := v.(type) {
	case nil:
		return Default(), nil
	case string:
		return FromText(x, baseDir)
	case *Policy:
		cp := *x
		return &cp, cp.Validate()
	case map[string]any:
		return policyFromMap(x, "")
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[fmt.Sprint(k)] = val
		}
		return policyFromMap(m, "")
	}
	return nil, fmt.Errorf("trust policy: want a level, a policy text, a file or a mapping, not %T", v)
}

// FromText interprets a trust string as host() and host.yaml accept
// it: a level ("open", "careful", "strict"), a path to a policy file
// (markdown with YAML front matter, or YAML), or natural-language policy
// text (Prose). A single word that is none of these is an error, so a
// misspelt level does not silently become a policy for the Judge.
func FromText(s, baseDir string) (*Policy, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return Default(), nil
	}
	if p, ok := Preset(strings.ToLower(t)); ok {
		return p, nil
	}
	if !strings.ContainsAny(t, "\n\r") {
		path := t
		if !filepath.IsAbs(path) && baseDir != "" {
			path = filepath.Join(baseDir, path)
		}
		_, statErr := os.Stat(path)
		ext := strings.ToLower(filepath.Ext(t))
		isPolicyExt := ext == ".md" || ext == ".markdown" || ext == ".yaml" || ext == ".yml"
		if statErr == nil || isPolicyExt && !strings.ContainsAny(t, " \t") {
			return LoadFile(path)
		}
		if !strings.ContainsAny(t, " \t") {
			return nil, fmt.Errorf("trust: unknown level %q (want open, careful or strict, a policy file, or a policy in words)", clipAddr(t))
		}
	}
	return Prose(t), nil
}

// LoadFile reads a policy file. A .yaml or .yml file holds the
// "trust:" value. Any other file is markdown: YAML front matter between
// "---" lines holds the mapping and the body is the natural-language
// policy; without front matter the whole file is the policy text.
func LoadFile(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trust policy file: %w", err)
	}
	ext := strings.ToLower(filepath.Ext(path))
	if ext == ".yaml" || ext == ".yml" {
		p, err := Parse(b, filepath.Dir(path))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return p, nil
	}
	p, err := ParseMarkdown(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// ParseMarkdown reads a markdown policy: optional YAML front matter
// (the mapping) and a body (the natural-language policy). When the front
// matter sets no default and the body is not empty, the default is ask.
func ParseMarkdown(text string) (*Policy, error) {
	text = strings.TrimPrefix(text, "\ufeff")
	front, body, ok, err := splitFrontMatter(text)
	if err != nil {
		return nil, err
	}
	if !ok {
		if strings.TrimSpace(text) == "" {
			return nil, errors.New("trust policy: empty policy file")
		}
		return Prose(text), nil
	}
	var v any
	if err := yaml.Unmarshal([]byte(front), &v); err != nil {
		return nil, fmt.Errorf("trust policy front matter: %w", err)
	}
	switch x := v.(type) {
	case nil:
		v = map[string]any{}
	case string:
		p, ok := Preset(strings.ToLower(strings.TrimSpace(x)))
		if !ok {
			return nil, fmt.Errorf("trust policy front matter: unknown level %q", clipAddr(x))
		}
		p.Prose = strings.TrimSpace(body)
		return p, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("trust policy front matter: want a mapping, not %T", v)
	}
	return policyFromMap(m, strings.TrimSpace(body))
}

// splitFrontMatter splits "---\nyaml\n---\nbody". ok is false when text has
// no front matter.
func splitFrontMatter(text string) (front, body string, ok bool, err error) {
	first, rest, _ := strings.Cut(text, "\n")
	if strings.TrimSpace(first) != "---" {
		return "", "", false, nil
	}
	var fm strings.Builder
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		if t := strings.TrimSpace(line); t == "---" || t == "..." {
			return fm.String(), rest, true, nil
		}
		fm.WriteString(line)
		fm.WriteByte('\n')
	}
	return "", "", false, errors.New("trust policy: front matter has no closing '---'")
}

var policyKeys = []string{"allow", "deny", "onboard", "default", "anonymous", "policy"}

// policyFromMap builds a custom policy from a mapping; prose comes from a
// markdown body. Missing keys: allow [whitelisted, contact], deny
// [blocked], default ask when there is prose and deny otherwise.
func policyFromMap(m map[string]any, prose string) (*Policy, error) {
	p := &Policy{Name: PresetCustom, Allow: []string{"whitelisted", "contact"}, Deny: []string{"blocked"}, Prose: prose}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := m[k]
		var err error
		switch k {
		case "allow":
			p.Allow, err = stringList(val)
		case "deny":
			p.Deny, err = stringList(val)
		case "onboard":
			p.Onboard, err = parseOnboard(val)
		case "default":
			p.Default, err = parseAction(val)
		case "anonymous":
			p.Anonymous, err = parseAction(val)
		case "policy":
			s, ok := val.(string)
			switch {
			case !ok:
				err = errors.New("want text")
			case prose != "":
				err = errors.New("given both in the mapping and as the file's body")
			default:
				p.Prose = strings.TrimSpace(s)
			}
		default:
			return nil, fmt.Errorf("trust policy: unknown key %q (known: %s)", clipAddr(k), strings.Join(policyKeys, ", "))
		}
		if err != nil {
			return nil, fmt.Errorf("trust policy: %s: %w", k, err)
		}
	}
	if p.Default == "" {
		p.Default = ActionDeny
		if p.Prose != "" {
			p.Default = ActionAsk
		}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func parseAction(v any) (Action, error) {
	s, ok := v.(string)
	a := Action(strings.ToLower(strings.TrimSpace(s)))
	if !ok || a != ActionAllow && a != ActionDeny && a != ActionAsk {
		return "", errors.New("want allow, deny or ask")
	}
	return a, nil
}

// stringList accepts a list of scalars or one scalar.
func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			switch e.(type) {
			case string, uint64, int64, int, float64, bool:
				out = append(out, fmt.Sprint(e))
			default:
				return nil, fmt.Errorf("want a list of words, found %T", e)
			}
		}
		return out, nil
	case []string:
		return x, nil
	}
	return nil, fmt.Errorf("want a list, not %T", v)
}

func parseOnboard(v any) (Onboarding, error) {
	var o Onboarding
	if v == nil {
		return o, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return o, fmt.Errorf("want a mapping with invite_code and payment, not %T", v)
	}
	for k, val := range m {
		switch k {
		case "invite_code", "invite_codes":
			codes, err := stringList(val)
			if err != nil {
				return o, fmt.Errorf("%s: %w", k, err)
			}
			o.InviteCodes = append(o.InviteCodes, codes...)
		case "payment":
			n, err := toInt64(val)
			if err != nil || n < 0 {
				return o, errors.New("payment: want a whole number of credits, zero or more")
			}
			o.Payment = n
		default:
			return o, fmt.Errorf("unknown key %q (known: invite_code, payment)", clipAddr(k))
		}
	}
	return o, nil
}

func toInt64(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, errors.New("too large")
		}
		return int64(x), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1e15 {
			return 0, errors.New("not a whole number")
		}
		return int64(x), nil
	}
	return 0, fmt.Errorf("want a number, not %T", v)
}

// clipAddr shortens what a caller sent before it goes into an error.
func clipAddr(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
