package browsertest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// EnvAxe names the axe-core script (axe.min.js) the accessibility checks
// inject into pages; scripts/service-axe.sh installs it and prints the
// variable.
const EnvAxe = "AGENTHOST_TEST_AXE"

// AxeViolation is one axe-core rule a page fails, with the elements that
// fail it: what a person using a screen reader, the keyboard or low vision
// would run into.
type AxeViolation struct {
	// ID is the rule, e.g. "color-contrast".
	ID string `json:"id"`
	// Impact is "minor", "moderate", "serious" or "critical".
	Impact string `json:"impact"`
	// Help says what the rule asks for; HelpURL explains it.
	Help    string    `json:"help"`
	HelpURL string    `json:"helpUrl"`
	Nodes   []AxeNode `json:"nodes"`
}

// AxeNode is one element failing a rule.
type AxeNode struct {
	// Target is the CSS selector of the element.
	Target string `json:"target"`
	// HTML is the start of the element's markup.
	HTML string `json:"html"`
	// Summary says how to fix it, e.g. the contrast ratio found.
	Summary string `json:"summary"`
}

// String is the violation as a test prints it: rule, impact, help, and
// each element with its fix.
func (v AxeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s — %s", v.ID, v.Impact, v.Help, v.HelpURL)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    %s  %s\n      %s", n.Target, n.HTML, strings.ReplaceAll(n.Summary, "\n", "\n      "))
	}
	return b.String()
}

var axeSource struct {
	once sync.Once
	src  string
	err  error
}

// axeScript returns axe-core's source, or "" when it is not installed.
func axeScript() (string, error) {
	axeSource.once.Do(func() {
		path := os.Getenv(EnvAxe)
		if path == "" {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			axeSource.err = fmt.Errorf("%s=%s: %w", EnvAxe, path, err)
			return
		}
		axeSource.src = string(b)
	})
	return axeSource.src, axeSource.err
}

const axeMissing = "no axe-core: set " + EnvAxe + " to axe.min.js (scripts/service-axe.sh installs it and prints the variable)"

// RequireAxe skips the test when axe-core is not installed (under
// CI=true it fails instead), so a test that checks nothing else can start
// with it. Browser tests that check more call CheckAxeAll, which only logs a
// missing axe-core outside CI.
func RequireAxe(t testing.TB) {
	t.Helper()
	src, err := axeScript()
	if err != nil {
		t.Fatal(err)
	}
	if src == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(axeMissing)
		}
		t.Skip(axeMissing)
	}
}

// AxeAvailable reports whether axe-core is installed. Under CI=true a
// missing axe-core fails the test.
func AxeAvailable(t testing.TB) bool {
	t.Helper()
	src, err := axeScript()
	if err != nil {
		t.Fatal(err)
	}
	if src == "" && os.Getenv("CI") == "true" {
		t.Fatal(axeMissing)
	}
	return src != ""
}

// Axe runs axe-core's default rules (WCAG 2.x A and AA, and best
// practices) on the page's document as it is now, and returns every
// violation. Only what is rendered is checked (hidden views and
// collapsed details are not), so a test checks each view and state it
// cares about. A cross-site iframe is its own Page (see Frame): check it
// there. axe-core is injected through the DevTools protocol, which the
// page's Content-Security-Policy does not restrict. The test fails when
// axe-core is not installed; see RequireAxe and AxeAvailable.
func (p *Page) Axe() []AxeViolation {
	p.T.Helper()
	src, err := axeScript()
	if err != nil {
		p.fail("%v", err)
	}
	if src == "" {
		p.fail("%s", axeMissing)
	}
	if !Eval[bool](p, `typeof window.axe === "object" && typeof window.axe.run === "function"`) {
		if _, err := chromedp.Run(p.Ctx, chromedp.Evaluate[chromedp.Void](src+"\n;true")); err != nil {
			p.fail("injecting axe-core: %v", err)
		}
	}
	return Eval[[]AxeViolation](p, `axe.run(document, { iframes: false, resultTypes: ["violations"] }).then((r) =>
		r.violations.map((v) => ({
			id: v.id, impact: v.impact || "", help: v.help, helpUrl: v.helpUrl,
			nodes: v.nodes.map((n) => ({ target: n.target.map(String).join(" "), html: n.html.slice(0, 200), summary: n.failureSummary || "" })),
		})))`)
}

// CheckAxeAll runs Axe in the light and in the dark color scheme (the
// pages follow the system's) and fails the test on every violation, minor
// ones included: the pages have none, and this keeps it so. name says
// which view or state is checked, in the messages and in the screenshot
// taken on a finding. Without axe-core it logs that nothing was checked,
// except under CI=true, where it fails: a long browser test should not be
// skipped for it.
func (p *Page) CheckAxeAll(name string) {
	p.T.Helper()
	if !AxeAvailable(p.T) {
		p.T.Logf("axe: %s not checked: %s", name, axeMissing)
		return
	}
	defer p.ColorScheme("")
	for _, scheme := range []string{"light", "dark"} {
		p.ColorScheme(scheme)
		var bad []string
		for _, v := range p.Axe() {
			bad = append(bad, v.String())
		}
		if len(bad) > 0 {
			p.saveScreenshot("axe-" + name + "-" + scheme)
			p.T.Errorf("axe: %s (%s color scheme): %d violations:\n  %s", name, scheme, len(bad), strings.Join(bad, "\n  "))
		}
	}
}

// ColorScheme makes the page see prefers-color-scheme as "light" or
// "dark"; "" returns to the browser's own.
func (p *Page) ColorScheme(scheme string) {
	p.T.Helper()
	params := emulation.SetEmulatedMediaParams{}
	if scheme != "" {
		params.Features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}
	}
	p.Run(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, params)
		return err
	}))
}
