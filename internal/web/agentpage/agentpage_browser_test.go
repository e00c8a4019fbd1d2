package agentpage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/agenthost/agenthost/internal/web/browsertest"
)

// hostile is agent output meant to run in the page: a session title, a
// permission's command and a file name carry it. None of it may become
// markup (an <img> or <b> element) or run (window.__pwned).
const hostile = `<img src=x onerror=window.__pwned=1><b>bold`

// The agent page in a real browser against a real platform whose agent is
// the real coding runtime (offline model): signed in from the dashboard
// and on the page itself, status and the first
// session, start a session, a permission answered, a question answered,
// files browsed and downloaded, usage; agent output shown as text only;
// the token in no URL; another organization's token sees no agent; axe-core
// finds no violation in any state.
func TestAgentPageBrowser(t *testing.T) {
	env := startPlatform(t, true)
	tokA, tokB := env.Token(t, "page-org-a"), env.Token(t, "page-org-b")
	api := env.Client(tokA)
	id := createAgent(t, env, tokA, map[string]any{"name": "page-bot", "model": "offline/demo", "initialPrompt": "Hello from the agent page test"})
	first := ""
	if ss, _ := api.Do(t, "GET", "/api/v1/agents/"+id, nil).Want(t, 200)["sessions"].([]any); len(ss) == 1 {
		first, _ = ss[0].(map[string]any)["id"].(string)
	}
	if first == "" {
		t.Fatal("the initial prompt made no session")
	}

	// Signed in on the dashboard, the tab is signed in on the agent page.
	p := browsertest.New(t, browsertest.Options{Timeout: 4 * time.Minute})
	p.Navigate(env.URL + "/")
	p.Type("#signin-token", tokA+"\n")
	p.WaitText(".card.agent h2", "page-bot")
	p.Navigate(env.URL + "/a/" + id)

	// Status and the first session, with its page.
	p.WaitText("#agent-name", "page-bot")
	p.WaitText("#agent-status", "RUNNING")
	p.WaitText("#sessions a", "Hello from the agent page test")
	if href := browsertest.Eval[string](p, `document.querySelector("#sessions a").href`); !strings.Contains(href, "/a/"+id+"/session/"+first+"?cap=") {
		t.Errorf("session link %q", href)
	}
	p.Screenshot("signed-in")

	// Start a session whose title is hostile.
	p.Type("#ns-message", hostile+"\n")
	p.WaitText("#flash", "started")
	p.WaitFor(`document.querySelectorAll("#sessions li").length === 2`)
	p.WaitText("#sessions a", hostile) // its title, once its first turn ended

	// A permission whose command is hostile, answered on the page.
	cmd := fmt.Sprintf(`mkdir -p src && echo hello-download > src/notes.md && echo 'evil' > '%s.txt'`, hostile)
	prompt := `run bash ` + mustJSON(t, map[string]string{"command": cmd})
	api.Do(t, "POST", "/api/v1/agents/"+id+"/messages", map[string]string{"message": prompt, "sessionId": first}).Want(t, 200)
	p.WaitText(".card.permission h3", "Allow bash?")
	p.WaitText(".card.permission pre", hostile)
	p.WaitVisible("#agent-busy")
	p.CheckAxeAll("permission")
	p.Screenshot("permission")
	p.ClickButton(".card.permission", "Allow once")
	p.WaitText("#flash", "allowed")
	p.WaitFor(`!document.querySelector(".card.permission")`)

	// A question, answered on the page.
	q := `use question {"questions":[{"question":"Which flavour?","header":"Flavour","options":[{"label":"Plain","description":"Simple"},{"label":"` + hostile + `","description":"Hostile"}],"multiSelect":false}]}`
	api.Do(t, "POST", "/api/v1/agents/"+id+"/messages", map[string]string{"message": q, "sessionId": first}).Want(t, 200)
	p.WaitText(".card.question legend", "Which flavour?")
	p.WaitText(".card.question label", hostile)
	p.CheckAxeAll("question")
	p.Click(`.card.question input[value="Plain"]`)
	p.ClickButton(".card.question", "Submit answer")
	p.WaitText("#flash", "Answer sent")
	p.WaitFor(`!document.querySelector(".card.question")`)
	p.WaitFor(`document.getElementById("agent-busy").hidden`)

	// Files: the workspace, a folder, a download.
	p.Click("#files-refresh")
	p.WaitFor(`document.querySelector('#files tr[data-path="src"]')`)
	p.WaitText("#files td", hostile+".txt")
	p.CheckAxeAll("files")
	p.ClickButton(`#files tr[data-path="src"]`, "src/")
	p.WaitFor(`document.querySelector('#files tr[data-path="src/notes.md"]')`)
	p.WaitText("#files-crumbs [aria-current]", "src")
	dir := t.TempDir()
	allowDownloads(t, p, dir)
	p.ClickButton(`#files tr[data-path="src/notes.md"]`, "Download")
	p.WaitText("#flash", "Downloaded notes.md")
	if got := waitFile(t, filepath.Join(dir, "notes.md")); got != "hello-download\n" {
		t.Errorf("downloaded %q", got)
	}
	p.Screenshot("files")
	p.ClickButton("#files-crumbs", "workspace")
	p.WaitFor(`document.querySelector('#files tr[data-path="src"]')`)

	// Usage.
	p.Click("#usage-refresh")
	p.WaitText("#usage-total", "$")
	p.WaitFor(`document.querySelectorAll("#usage-sessions tbody tr").length === 2`)
	p.CheckAxeAll("agent")

	// Agent output stayed text: no element from it, nothing ran.
	if n := browsertest.Eval[int](p, `document.querySelectorAll("main img, main b, main script").length`); n != 0 {
		t.Errorf("%d elements made from agent output", n)
	}
	if browsertest.Eval[bool](p, `window.__pwned !== undefined`) {
		t.Error("agent output ran in the page")
	}
	// The token went in headers only: no URL the page loaded or shows has it.
	urls := browsertest.Eval[[]string](p, `[location.href, document.referrer, ...performance.getEntriesByType("resource").map((e) => e.name), ...[...document.querySelectorAll("a[href]")].map((a) => a.href)]`)
	for _, u := range urls {
		if strings.Contains(u, tokA) {
			t.Errorf("the token is in a URL: %s", u)
		}
	}
	if len(urls) < 10 {
		t.Errorf("only %d URLs seen: %v", len(urls), urls)
	}

	// On a phone: nothing wider than the screen, and axe-core again.
	p.Run(chromedp.EmulateViewport(390, 844))
	p.WaitFor(`document.documentElement.clientWidth === 390`)
	if w := browsertest.Eval[int](p, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("page is %dpx wide at 390px", w)
	}
	p.CheckAxeAll("phone")
	p.Screenshot("phone")

	// Stop and start from the page. A poll that reaches the runtime while
	// it shuts down is answered 502 or 503, and one that read the agent as
	// running just before the stop, 400 (the agent is not running); the
	// page tries again on the next round, but the browser logs the failed
	// request.
	p.Allow(`status of (400|50[23]) .*/api/v1/agents/[^/]+/(permissions|questions|files|usage)`)
	p.ClickButton("#agent-actions", "Stop")
	p.WaitText("#agent-status", "STOPPED")
	p.WaitText("#files", "not running")
	p.CheckAxeAll("stopped")
	p.ClickButton("#agent-actions", "Start")
	p.WaitText("#agent-status", "RUNNING")
	p.WaitFor(`document.querySelector('#files tr[data-path="src"]')`)

	// Another organization's token: no such agent.
	o := browsertest.New(t, browsertest.Options{Width: 390, Height: 844})
	o.Allow(`status of 404`)
	o.Navigate(env.URL + "/a/" + id)
	o.WaitVisible("#signin-token")
	o.CheckAxeAll("sign-in")
	o.Type("#signin-token", tokB+"\n")
	o.WaitVisible("#view-missing")
	if browsertest.Eval[bool](o, `document.body.textContent.includes("page-bot") || !document.getElementById("view-agent").hidden`) {
		t.Error("org B sees org A's agent")
	}
	o.CheckAxeAll("missing")
	o.Screenshot("missing")
	// Signing out forgets the token.
	o.Click("#sign-out")
	o.WaitVisible("#signin-token")
	if browsertest.Eval[string](o, `sessionStorage.getItem("agenthost.token") || ""`) != "" {
		t.Error("token kept after sign-out")
	}
}

// allowDownloads saves the page's downloads in dir under their names.
func allowDownloads(t *testing.T, p *browsertest.Page, dir string) {
	t.Helper()
	bc := chromedp.FromContext(p.Ctx).BrowserContextID
	if _, err := chromedp.CallBrowser(p.Ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, BrowserContextID: bc, DownloadPath: dir,
	}); err != nil {
		t.Fatal(err)
	}
}

// waitFile waits for the browser (another process) to finish writing a
// download, and returns its contents.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			return string(b)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			entries, _ := os.ReadDir(filepath.Dir(path))
			t.Fatalf("no download at %s (directory: %v)", path, entries)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
