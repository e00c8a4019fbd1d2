package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestPresets(t *testing.T) {
	for _, name := range []string{PresetOpen, PresetCareful, PresetStrict} {
		p, ok := Preset(name)
		if !ok || p.Name != name || p.Validate() != nil {
			t.Fatalf("Preset(%s) = %+v, %v", name, p, ok)
		}
	}
	if _, ok := Preset("paranoid"); ok {
		t.Error("unknown preset accepted")
	}
	// Presets are fresh copies.
	a, _ := Preset(PresetStrict)
	a.Allow[0] = "changed"
	b, _ := Preset(PresetStrict)
	if b.Allow[0] != "whitelisted" {
		t.Error("presets share state")
	}
}

func TestEvaluate(t *testing.T) {
	open, _ := Preset(PresetOpen)
	careful, _ := Preset(PresetCareful)
	strict, _ := Preset(PresetStrict)
	onboarding := &Policy{Name: PresetCustom, Allow: []string{"whitelisted", "contact"}, Deny: []string{"blocked"},
		Onboard: Onboarding{InviteCodes: []string{"BETA2024"}, Payment: 10}, Default: ActionDeny}
	ask := Prose("I trust contacts.")
	literal := &Policy{Name: PresetCustom, Allow: []string{addrA, "0xcd*"}, Deny: []string{"0xabc1*"}, Default: ActionDeny, Anonymous: ActionAllow}
	strangersOnly := &Policy{Name: PresetCustom, Allow: []string{"stranger"}, Default: ActionDeny}
	noAnonymous := &Policy{Name: PresetCustom, Deny: []string{"anonymous"}, Default: ActionAllow}

	for _, tc := range []struct {
		name   string
		p      *Policy
		addr   string
		level  Level
		want   Outcome
		sigReq bool
		byDef  bool
	}{
		{"open anonymous", open, "", LevelAnonymous, OutcomeAllow, false, true},
		{"open blocked", open, addrA, LevelBlocked, OutcomeDeny, false, false},
		{"careful anonymous", careful, "", LevelAnonymous, OutcomeAllow, false, true},
		{"careful stranger", careful, addrA, LevelStranger, OutcomeAllow, false, true},
		{"careful blocked", careful, addrA, LevelBlocked, OutcomeDeny, false, false},
		{"strict anonymous", strict, "", LevelAnonymous, OutcomeDeny, true, true},
		{"strict stranger", strict, addrA, LevelStranger, OutcomeDeny, false, true},
		{"strict contact", strict, addrA, LevelContact, OutcomeAllow, false, false},
		{"strict whitelisted", strict, addrA, LevelWhitelisted, OutcomeAllow, false, false},
		{"strict blocked", strict, addrA, LevelBlocked, OutcomeDeny, false, false},
		{"onboarding stranger", onboarding, addrA, LevelStranger, OutcomeOnboard, false, true},
		{"onboarding anonymous", onboarding, "", LevelAnonymous, OutcomeDeny, true, true},
		{"ask stranger", ask, addrA, LevelStranger, OutcomeAsk, false, true},
		{"ask contact", ask, addrA, LevelContact, OutcomeAsk, false, true},
		{"ask whitelisted", ask, addrA, LevelWhitelisted, OutcomeAllow, false, false},
		{"ask anonymous", ask, "", LevelAnonymous, OutcomeAsk, false, true},
		{"literal allowed", literal, addrA, LevelStranger, OutcomeAllow, false, false},
		{"literal pattern", literal, addrB, LevelStranger, OutcomeAllow, false, false},
		{"literal denied beats whitelisted", literal, addrC, LevelWhitelisted, OutcomeDeny, false, false},
		{"literal anonymous override", literal, "", LevelAnonymous, OutcomeAllow, false, true},
		{"literal other", literal, "0x" + strings.Repeat("1", 64), LevelStranger, OutcomeDeny, false, true},
		{"strangers group", strangersOnly, addrA, LevelStranger, OutcomeAllow, false, false},
		{"strangers group, contact", strangersOnly, addrA, LevelContact, OutcomeDeny, false, true},
		{"anonymous group denied", noAnonymous, "", LevelAnonymous, OutcomeDeny, true, false},
		{"anonymous group, signed caller", noAnonymous, addrA, LevelStranger, OutcomeAllow, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.p.Evaluate(tc.addr, tc.level)
			if d.Outcome != tc.want || d.SignatureRequired != tc.sigReq || d.ByDefault != tc.byDef || d.Level != tc.level {
				t.Fatalf("Evaluate = %+v", d)
			}
			if d.Outcome == OutcomeDeny || d.Outcome == OutcomeOnboard {
				if d.Reason == "" {
					t.Error("no reason")
				}
				if strings.Contains(d.Reason, "0x") {
					t.Errorf("reason leaks an address: %s", d.Reason)
				}
			}
			if d.Outcome == OutcomeOnboard && (!reflect.DeepEqual(d.Methods, []string{"invite_code", "payment"}) || d.PaymentAmount != 10) {
				t.Errorf("onboarding offer: %+v", d)
			}
		})
	}
}

const seedPolicyYAML = `
  # Who has access (checked in order)
  allow:
    - whitelisted   # Addresses in whitelist.txt
    - contact       # Previously promoted contacts

  # Who is blocked
  deny:
    - blocked       # Addresses in blacklist.txt

  # How strangers become contacts (onboarding)
  onboard:
    invite_code:
      - OpenOnion
      - BETA2024
    payment: 10     # Minimum credits required

  # What to do with strangers without credentials
  default: ask
`

func TestParsePolicy(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "policy.md")
	if err := os.WriteFile(md, []byte("---\nallow: [whitelisted]\nonboard:\n  invite_code: BETA\n---\n\n# My policy\nI trust requests that come from known contacts.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := filepath.Join(dir, "trust.yaml")
	if err := os.WriteFile(yml, []byte("strict\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		yaml string
		want Policy
	}{
		{"empty", ``, *Default()},
		{"level", `careful`, *Default()},
		{"level upper case", `STRICT`, Policy{Name: "strict", Allow: []string{"whitelisted", "contact"}, Deny: []string{"blocked"}, Default: ActionDeny}},
		{"seed mapping", seedPolicyYAML, Policy{Name: PresetCustom, Allow: []string{"whitelisted", "contact"}, Deny: []string{"blocked"},
			Onboard: Onboarding{InviteCodes: []string{"OpenOnion", "BETA2024"}, Payment: 10}, Default: ActionAsk}},
		{"flow style", `{allow: [whitelisted, contact], deny: [blocked], onboard: {invite_code: [OpenOnion, BETA2024], payment: 10}, default: deny}`,
			Policy{Name: PresetCustom, Allow: []string{"whitelisted", "contact"}, Deny: []string{"blocked"},
				Onboard: Onboarding{InviteCodes: []string{"OpenOnion", "BETA2024"}, Payment: 10}, Default: ActionDeny}},
		{"minimal mapping defaults to deny", `{onboard: {payment: 5}}`, Policy{Name: PresetCustom, Allow: []string{"whitelisted", "contact"}, Deny: []string{"blocked"},
			Onboard: Onboarding{Payment: 5}, Default: ActionDeny}},
		{"mapping with prose", "default: ask\nanonymous: deny\npolicy: |\n  Trust contacts.\nallow: " + addrA, Policy{Name: PresetCustom, Allow: []string{addrA}, Deny: []string{"blocked"},
			Default: ActionAsk, Anonymous: ActionDeny, Prose: "Trust contacts."}},
		{"prose text", "|\n  I trust requests that:\n  - Come from known contacts with good history\n  - Have valid signatures\n",
			Policy{Name: PresetCustom, Allow: []string{"whitelisted"}, Deny: []string{"blocked"}, Default: ActionAsk,
				Prose: "I trust requests that:\n- Come from known contacts with good history\n- Have valid signatures"}},
		{"one-line prose", `Only trust my contacts`, Policy{Name: PresetCustom, Allow: []string{"whitelisted"}, Deny: []string{"blocked"}, Default: ActionAsk, Prose: "Only trust my contacts"}},
		{"markdown file", `policy.md`, Policy{Name: PresetCustom, Allow: []string{"whitelisted"}, Deny: []string{"blocked"},
			Onboard: Onboarding{InviteCodes: []string{"BETA"}}, Default: ActionAsk, Prose: "# My policy\nI trust requests that come from known contacts."}},
		{"yaml file", `trust.yaml`, Policy{Name: "strict", Allow: []string{"whitelisted", "contact"}, Deny: []string{"blocked"}, Default: ActionDeny}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.yaml), dir)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*p, tc.want) {
				t.Errorf("got  %#v\nwant %#v", *p, tc.want)
			}
		})
	}
}

func TestParsePolicyErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, wantErr string }{
		{"typo level", `stict`, "unknown level"},
		{"missing file", `policies/missing.md`, "no such file"},
		{"unknown key", `{allow: [contact], defualt: deny}`, `unknown key "defualt"`},
		{"bad default", `{default: maybe}`, "allow, deny or ask"},
		{"bad group", `{allow: [friends]}`, "neither a group"},
		{"placeholder address", `{deny: ["0xbad..."]}`, "neither a group"},
		{"negative payment", `{onboard: {payment: -1}}`, "payment"},
		{"fractional payment", `{onboard: {payment: 1.5}}`, "payment"},
		{"unknown onboard key", `{onboard: {coupon: x}}`, "unknown key"},
		{"empty code", `{onboard: {invite_code: [""]}}`, "empty"},
		{"list value", `[a, b]`, "want a level"},
		{"bad yaml", `{allow: [`, "trust policy"},
		{"policy not text", `{policy: [1]}`, "want text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParsePolicyMarkdown(t *testing.T) {
	p, err := ParseMarkdown("I trust everyone who signs.\n")
	if err != nil || p.Default != ActionAsk || p.Prose != "I trust everyone who signs." {
		t.Errorf("no front matter: %+v, %v", p, err)
	}
	p, err = ParseMarkdown("\ufeff---\ndefault: allow\n---\nBe nice.")
	if err != nil || p.Default != ActionAllow || p.Prose != "Be nice." {
		t.Errorf("front matter with default: %+v, %v", p, err)
	}
	p, err = ParseMarkdown("---\nstrict\n---\nNotes.")
	if err != nil || p.Name != PresetStrict || p.Prose != "Notes." {
		t.Errorf("level front matter: %+v, %v", p, err)
	}
	p, err = ParseMarkdown("---\n---\nBody.")
	if err != nil || p.Default != ActionAsk {
		t.Errorf("empty front matter: %+v, %v", p, err)
	}
	for _, bad := range []string{"---\nallow: [x]\n", "", "---\npolicy: a\n---\nb", "---\n[1]\n---\n"} {
		if _, err := ParseMarkdown(bad); err == nil {
			t.Errorf("ParseMarkdown(%q) accepted", bad)
		}
	}
}

func TestPolicyFromValue(t *testing.T) {
	p, err := FromValue(map[any]any{"default": "allow"}, "")
	if err != nil || p.Default != ActionAllow {
		t.Errorf("map[any]any: %+v %v", p, err)
	}
	strict, _ := Preset(PresetStrict)
	p, err = FromValue(strict, "")
	if err != nil || p == strict || p.Name != PresetStrict {
		t.Errorf("*Policy: %+v %v", p, err)
	}
	if _, err := FromValue(42, ""); err == nil {
		t.Error("int accepted")
	}
}
