// Package browsertest drives headless Chromium from Go tests with chromedp.
//
// New starts a browser for one test (from AGENTHOST_TEST_CHROMIUM, else
// chromium on PATH; with --no-sandbox when running as root) and returns
// its first tab with a deadline. The test is skipped when no browser is
// found, unless CI is "true", where it fails. Errors the page writes to the
// console and uncaught exceptions fail the test unless allowed. Screenshot
// saves PNGs under the test's artifact directory (t.ArtifactDir: kept with
// `go test -artifacts -outputdir DIR`, a temporary directory otherwise; the
// path is logged). CheckAxe and CheckAxeAll run the axe-core
// accessibility engine (AGENTHOST_TEST_AXE) on the page as it is.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// EnvChromium names the browser binary tests use.
const EnvChromium = "AGENTHOST_TEST_CHROMIUM"

// DefaultTimeout bounds a whole test's browser work.
const DefaultTimeout = 90 * time.Second

// Options tune New.
type Options struct {
	// Timeout bounds the test's browser work; DefaultTimeout when zero.
	Timeout time.Duration
	// Width and Height set the viewport (e.g. 375 for a phone); the
	// window is 1280×900 otherwise.
	Width, Height int
}

// Page is one browser tab in a test. Its methods fail the test on error,
// after saving a screenshot named "failure".
type Page struct {
	T testing.TB
	// Ctx is the tab's chromedp context, with the test's deadline.
	Ctx context.Context

	parent  *Page
	mu      sync.Mutex
	allowed []*regexp.Regexp
	errs    []string
}

var shots atomic.Int64

// Chromium returns the browser to use, or "" when there is none.
func Chromium() string {
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Require skips the test under -short or when no browser is available
// (then it fails under CI=true instead). It returns the browser's path.
func Require(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test (-short runs no services)")
	}
	p := Chromium()
	if p == "" {
		msg := "no Chromium: set " + EnvChromium + " (scripts/service-chromium.sh installs it)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// The browser is shared by the tests of a package (it starts slowly on a
// busy machine): each test gets its own browser context (cookies and
// storage apart) and tab. It stops shortly after the last test using it
// ends, and with the test binary.
var shared struct {
	mu     sync.Mutex
	ctx    context.Context // the browser's chromedp context
	cancel context.CancelFunc
	users  int
	timer  *time.Timer
}

func acquire(t testing.TB, bin string) context.Context {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.timer != nil {
		shared.timer.Stop()
		shared.timer = nil
	}
	if shared.ctx == nil {
		aopts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(bin),
			chromedp.WindowSize(1280, 900),
			chromedp.Flag("disable-gpu", true),
		)
		if os.Geteuid() == 0 {
			aopts = append(aopts, chromedp.NoSandbox)
		}
		actx, acancel := chromedp.NewExecAllocator(context.Background(), aopts...)
		bctx, bcancel := chromedp.NewContext(actx)
		// Start the browser with no deadline: a deadline on the first run
		// would stop the whole browser.
		if err := chromedp.Do(bctx); err != nil {
			bcancel()
			acancel()
			t.Fatalf("starting %s: %v", bin, err)
		}
		shared.ctx, shared.cancel = bctx, func() { bcancel(); acancel() }
	}
	shared.users++
	return shared.ctx
}

func release() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.users--
	if shared.users > 0 || shared.ctx == nil {
		return
	}
	shared.timer = time.AfterFunc(2*time.Second, func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		if shared.users == 0 && shared.ctx != nil {
			shared.cancel()
			shared.ctx, shared.cancel = nil, nil
		}
	})
}

// Stop closes the shared browser now, waiting for it to exit, instead of
// shortly after the last test: for a TestMain that looks for leaked
// goroutines once the tests are done (the browser's would be counted).
func Stop() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.timer != nil {
		shared.timer.Stop()
		shared.timer = nil
	}
	if shared.ctx != nil {
		shared.cancel()
		shared.ctx, shared.cancel = nil, nil
	}
}

// New opens a tab for the test in its own browser context.
func New(t testing.TB, opts ...Options) *Page {
	t.Helper()
	bin := Require(t)
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	bctx := acquire(t, bin)
	t.Cleanup(release)
	tctx, tcancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	t.Cleanup(tcancel)
	if err := chromedp.Do(tctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	ctx, cancel := context.WithTimeout(tctx, o.Timeout)
	t.Cleanup(cancel)
	p := &Page{T: t, Ctx: ctx}
	p.watchConsole(tctx)
	t.Cleanup(p.checkConsole)
	if o.Width > 0 {
		h := o.Height
		if h == 0 {
			h = 800
		}
		p.Run(chromedp.EmulateViewport(int64(o.Width), int64(h)))
	}
	return p
}

// Allow makes console errors matching the regular expression harmless.
func (p *Page) Allow(pattern string) {
	root := p.root()
	root.mu.Lock()
	root.allowed = append(root.allowed, regexp.MustCompile(pattern))
	root.mu.Unlock()
}

func (p *Page) root() *Page {
	for p.parent != nil {
		p = p.parent
	}
	return p
}

func (p *Page) watchConsole(ctx context.Context) {
	msgs := chromedp.Console(ctx)
	root := p.root()
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
				continue
			}
			text := m.String()
			if m.URL != "" {
				text += " (" + m.URL + ")"
			}
			root.mu.Lock()
			root.errs = append(root.errs, text)
			root.mu.Unlock()
		}
	}()
}

// ConsoleErrors returns the console errors seen so far that are not allowed.
func (p *Page) ConsoleErrors() []string {
	root := p.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	var out []string
next:
	for _, e := range root.errs {
		for _, re := range root.allowed {
			if re.MatchString(e) {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

func (p *Page) checkConsole() {
	for _, e := range p.ConsoleErrors() {
		p.T.Errorf("browser console: %s", e)
	}
}

// Run runs the actions, failing the test on error.
func (p *Page) Run(actions ...chromedp.Action[chromedp.Void]) {
	p.T.Helper()
	if err := chromedp.Do(p.Ctx, actions...); err != nil {
		p.fail("%v", err)
	}
}

func (p *Page) fail(format string, args ...any) {
	p.T.Helper()
	if errs := p.ConsoleErrors(); len(errs) > 0 {
		p.T.Logf("browser console errors:\n%s", strings.Join(errs, "\n"))
	}
	p.saveScreenshot("failure")
	p.T.Fatalf(format, args...)
}

// Navigate loads url and waits for the body.
func (p *Page) Navigate(url string) {
	p.T.Helper()
	p.Run(chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body")))
}

// Click clicks the first element matching the CSS selector once visible.
func (p *Page) Click(sel string) {
	p.T.Helper()
	p.Run(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// Type focuses the element and types text. A "\n" presses Enter as a
// person does: a key down the page may cancel (to send a message) and a
// key up, with no character typed after a cancelled key down.
func (p *Page) Type(sel, text string) {
	p.T.Helper()
	var steps []chromedp.Action[chromedp.Void]
	for i, part := range strings.Split(text, "\n") {
		if i > 0 {
			steps = append(steps, enter)
		}
		if part != "" || i == 0 {
			steps = append(steps, chromedp.SendKeys(chromedp.CSS(sel), part, chromedp.NodeVisible))
		}
	}
	p.Run(steps...)
}

// enter presses Enter as a keyboard does: one keyDown carrying the text,
// so the browser fires keypress (and submits a form, or types a newline)
// only when the page did not cancel the keydown. chromedp's SendKeys("\n")
// sends a separate char event that types a newline even then.
var enter = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
		p := input.DispatchKeyEventParams{Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
		if typ == input.DispatchKeyEventTypeKeyDown {
			p.Text, p.UnmodifiedText = "\r", "\r"
		}
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, p); err != nil {
			return err
		}
	}
	return nil
})

// SetValue sets the value of the first input matching sel directly (no
// key events; an input event follows).
func (p *Page) SetValue(sel, value string) {
	p.T.Helper()
	p.WaitFor(fmt.Sprintf(`document.querySelector(%q)`, sel))
	Eval[bool](p, fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event("input", { bubbles: true })); return true; })()`, sel, value))
}

// Upload sets the files of an <input type=file>.
func (p *Page) Upload(sel string, files ...string) {
	p.T.Helper()
	p.Run(chromedp.SetUploadFiles(chromedp.CSS(sel), files, chromedp.NodeReady))
}

// WaitVisible waits until an element matching sel is visible.
func (p *Page) WaitVisible(sel string) {
	p.T.Helper()
	p.Run(chromedp.WaitVisible(chromedp.CSS(sel)))
}

// Eval evaluates a JavaScript expression and returns its JSON value.
func Eval[T any](p *Page, expr string) T {
	p.T.Helper()
	v, err := chromedp.Run(p.Ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fail("evaluating %s: %v", expr, err)
	}
	return v
}

// WaitFor polls the JavaScript expression until it is truthy.
func (p *Page) WaitFor(expr string) {
	p.T.Helper()
	if _, err := chromedp.Run(p.Ctx, chromedp.Poll[any](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		p.fail("waiting for %s: %v", expr, err)
	}
}

// WaitText waits until the text of some element matching sel contains want,
// and returns that element's text.
func (p *Page) WaitText(sel, want string) string {
	p.T.Helper()
	expr := fmt.Sprintf(`(() => { for (const e of document.querySelectorAll(%q)) if (e.textContent.includes(%q)) return e.textContent; return null; })()`, sel, want)
	v, err := chromedp.Run(p.Ctx, chromedp.Poll[string](expr, chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		got := Eval[[]string](p, fmt.Sprintf(`[...document.querySelectorAll(%q)].map((e) => e.textContent)`, sel))
		p.fail("waiting for %q in %s: %v (have %q)", want, sel, err, got)
	}
	return v
}

// Screenshot saves a full-page PNG as name.png under the test's artifact
// directory and returns its path.
func (p *Page) Screenshot(name string) string {
	p.T.Helper()
	path, err := p.screenshot(name)
	if err != nil {
		p.fail("screenshot %s: %v", name, err)
	}
	return path
}

func (p *Page) saveScreenshot(name string) {
	if _, err := p.screenshot(name); err != nil {
		p.T.Logf("screenshot %s: %v", name, err)
	}
}

func (p *Page) screenshot(name string) (string, error) {
	root := p.root()
	n := shots.Add(1) // one sequence for all the pages of a test binary
	// Frames are shot through their top page. The test's deadline may have
	// passed; a screenshot still helps to see why.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(root.Ctx), 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", err
	}
	dir := p.T.ArtifactDir()
	path := filepath.Join(dir, fmt.Sprintf("%03d-%s.png", n, sanitize(name)))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		return "", err
	}
	p.T.Logf("screenshot: %s", path)
	return path, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func sanitize(s string) string { return strings.Trim(unsafeChars.ReplaceAllString(s, "-"), "-") }

// Frame returns a page for the out-of-process iframe (another site) whose
// URL starts with urlPrefix, waiting for it to appear. Its console errors
// count for the test too.
func (p *Page) Frame(urlPrefix string) *Page {
	p.T.Helper()
	var id target.ID
	for id == "" {
		infos, err := chromedp.Targets(p.Ctx)
		if err != nil {
			p.fail("listing targets: %v", err)
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.HasPrefix(info.URL, urlPrefix) {
				id = info.TargetID
			}
		}
		if id == "" {
			select {
			case <-p.Ctx.Done():
				p.fail("no iframe target at %s: %v", urlPrefix, p.Ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	fctx, cancel := chromedp.NewContext(p.Ctx, chromedp.WithTargetID(id))
	p.T.Cleanup(cancel)
	f := &Page{T: p.T, Ctx: fctx, parent: p}
	if err := chromedp.Do(fctx); err != nil && !errors.Is(err, context.Canceled) {
		p.fail("attaching to the iframe: %v", err)
	}
	f.watchConsole(fctx)
	return f
}

// ClickButton clicks the button (or link) inside the last element matching
// scope whose text is label and which is enabled. A page that re-renders
// between finding and clicking is retried.
func (p *Page) ClickButton(scope, label string) {
	p.T.Helper()
	for {
		mark := fmt.Sprintf("bt%d", time.Now().UnixNano())
		expr := fmt.Sprintf(`(() => { const s = [...document.querySelectorAll(%q)]; for (const root of s.reverse()) for (const b of root.querySelectorAll("button, a, [role=button]")) if (!b.disabled && b.textContent.trim() === %q) { b.dataset.bt = %q; return true; } return false; })()`, scope, label, mark)
		if _, err := chromedp.Run(p.Ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			p.fail("no button %q in %s: %v", label, scope, err)
		}
		ctx, cancel := context.WithTimeout(p.Ctx, 3*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-bt=%q]`, mark)), chromedp.NodeVisible))
		cancel()
		if err == nil {
			return
		}
		if p.Ctx.Err() != nil {
			p.fail("clicking %q in %s: %v", label, scope, err)
		}
	}
}

// Focus focuses the first element matching sel.
func (p *Page) Focus(sel string) {
	p.T.Helper()
	p.Run(chromedp.Focus(chromedp.CSS(sel), chromedp.NodeReady))
}

// Reload reloads the page and waits for the body.
func (p *Page) Reload() {
	p.T.Helper()
	p.Run(chromedp.Reload(), chromedp.WaitReady(chromedp.CSS("body")))
}
