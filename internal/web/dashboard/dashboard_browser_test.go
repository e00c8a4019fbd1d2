package dashboard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/web/browsertest"
)

// The dashboard and the session page in a real browser against a real
// platform whose agents are the real coding runtime (offline model).

type platformEnv struct {
	*platformtest.Env
	token string
}

func startPlatform(t *testing.T, runtimes bool) *platformEnv {
	t.Helper()
	env := platformtest.StartCoding(t, runtimes, 31000+(os.Getpid()%400)*20)
	return &platformEnv{Env: env, token: env.Token(t, "acme")}
}

func signIn(t *testing.T, p *browsertest.Page, env *platformEnv) {
	t.Helper()
	p.Navigate(env.URL + "/")
	p.WaitVisible("#signin-token")
	p.Type("#signin-token", env.token+"\n")
	p.WaitVisible("#view-agents")
}

// The dashboard with a running agent, its session page, and axe-core on
// the states only a running agent has: RUNNING, busy, STOPPED, the usage
// chart and its table.
func TestDashboardCreateAgentAndSessionPage(t *testing.T) {
	env := startPlatform(t, true)
	p := browsertest.New(t, browsertest.Options{Timeout: 4 * time.Minute})
	p.Allow(`401`) // the refused token below

	// A wrong token is refused; the right one signs in.
	p.Navigate(env.URL + "/")
	p.Type("#signin-token", "ah_live_wrong\n")
	p.WaitText("#error", "refused")
	p.SetValue("#signin-token", "")
	p.Type("#signin-token", env.token+"\n")
	p.WaitText("#agents-list", "No agents yet")
	if browsertest.Eval[string](p, `sessionStorage.getItem("agenthost.token")`) != env.token {
		t.Fatal("token not kept in sessionStorage")
	}
	p.Screenshot("signed-in")

	// Create an agent with an initial prompt: it appears RUNNING with a session.
	p.Click("#create-agent summary")
	p.Type("#ca-name", "docs-bot")
	p.Type("#ca-model", "offline/demo")
	p.Type("#ca-prompt", "Hello from the dashboard")
	p.Click("#ca-submit")
	p.WaitText(".card.agent h2", "docs-bot")
	p.WaitText(".card.agent .pill", "RUNNING")
	// The card links to the agent's page, the url its create answer gave.
	p.WaitFor(`(() => { const a = document.querySelector(".card.agent a.agent-page"); return a && a.getAttribute("href") === "/a/" + document.querySelector(".card.agent").dataset.id })()`)
	p.WaitText(".card.agent .sessions a", "Hello from the dashboard")
	p.WaitText("#flash", "created")
	p.CheckAxeAll("agent-running")
	p.Screenshot("created")

	// Stop, start and restart from the card.
	p.ClickButton(".card.agent", "Stop")
	p.WaitText(".card.agent .pill", "STOPPED")
	p.CheckAxeAll("agent-stopped")
	p.ClickButton(".card.agent", "Start")
	p.WaitText(".card.agent .pill", "RUNNING")
	p.ClickButton(".card.agent", "Restart")
	p.WaitText("#flash", "restarted")
	p.WaitText(".card.agent .pill", "RUNNING")

	// A second session, started from the card.
	p.Type(".card.agent .new-session input", "a second session please\n")
	p.WaitText("#flash", "started")
	p.WaitFor(`document.querySelectorAll(".card.agent .sessions li").length === 2`)

	// The session page: history with the initial prompt, a message, a
	// permission, a question, an upload.
	sessionURL := browsertest.Eval[string](p, `document.querySelector(".card.agent .sessions a").href`)
	if !strings.Contains(sessionURL, "/session/") || !strings.Contains(sessionURL, "cap=") {
		t.Fatalf("session link %q", sessionURL)
	}
	s := browsertest.New(t, browsertest.Options{Timeout: 4 * time.Minute})
	s.Navigate(sessionURL)
	s.WaitText("#conn", "Live")
	s.WaitText(".msg.user", "Hello from the dashboard")
	s.WaitText(".msg.assistant", "[offline demo model]")
	waitIdle(s)
	n := browsertest.Eval[int](s, `document.querySelectorAll(".msg.assistant").length`)
	s.Type("#prompt", "tell me more\n")
	s.WaitText(".msg.user", "tell me more")
	s.WaitFor(fmt.Sprintf(`document.querySelectorAll(".msg.assistant").length > %d`, n))
	waitIdle(s)
	s.Screenshot("session")

	s.Type("#prompt", `run bash {"command":"echo from-the-browser"}`+"\n")
	s.WaitText(".card.permission", "Allow bash?")
	s.Screenshot("permission")
	// Waiting for the permission, the agent is busy on the dashboard.
	p.WaitFor(`!document.querySelector(".card.agent .busy-pill").hidden`)
	p.CheckAxeAll("agent-busy")
	p.Screenshot("busy")
	s.ClickButton(".card.permission", "Allow once")
	s.WaitText(".tool .output", "from-the-browser")
	waitIdle(s)
	p.WaitFor(`document.querySelector(".card.agent .busy-pill").hidden`)

	s.Type("#prompt", `use question {"questions":[{"question":"How would you like me to implement this?","header":"Approach","options":[{"label":"Simple","description":"Quick"},{"label":"Full","description":"Complete"}],"multiSelect":false}]}`+"\n")
	s.WaitText(".card.question", "How would you like me to implement this?")
	s.Screenshot("question")
	s.Click(`.card.question input[value="Full"]`)
	s.ClickButton(".card.question", "Submit answer")
	s.WaitFor(`!document.querySelector(".card.question")`)
	s.WaitText(".tool .output", "Full")
	waitIdle(s)

	file := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(file, []byte("uploaded from the session page\n"), 0o644)
	s.Upload("#file", file)
	s.WaitText("#uploads li", "notes.txt")
	// A session page's upload is in its session's own folder, the only
	// one of uploads/sessions its sandbox shows.
	s.Type("#prompt", `run bash {"command":"cat uploads/sessions/*/notes.txt"}`+"\n")
	s.ClickButton(".card.permission", "Allow once")
	s.WaitText(".tool .output", "uploaded from the session page")
	waitIdle(s)
	s.Screenshot("upload")

	// The same page inside an iframe on another site.
	outer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><html><head><link rel="icon" href="data:,"><title>Customer app</title></head><body>
<h1>Customer app</h1><iframe src=%q style="width:100%%;height:620px;border:1px solid #ccc"></iframe></body></html>`, sessionURL)
	}))
	t.Cleanup(outer.Close)
	f := browsertest.New(t, browsertest.Options{Timeout: 3 * time.Minute})
	f.Navigate(strings.Replace(outer.URL, "127.0.0.1", "localhost", 1))
	frame := f.Frame(env.URL)
	frame.WaitText("#conn", "Live")
	frame.WaitText(".msg.user", "tell me more")
	frame.Type("#prompt", "hello from the iframe\n")
	frame.WaitText(".msg.user", "hello from the iframe")
	waitIdle(frame)
	f.Screenshot("iframe")

	// Usage: per session, and the chart.
	p.Click(`#nav a[data-view="usage"]`)
	p.WaitText("#usage-agent", "docs-bot")
	p.WaitVisible("#usage-total")
	p.WaitVisible("svg.chart")
	p.WaitText("#usage-sessions", "$")
	p.Click("#usage-body details summary")
	p.CheckAxeAll("usage")
	p.Screenshot("usage")

	// Delete asks once more, then removes the agent; the open session
	// pages lose their agent.
	s.Allow(`/api/`)
	f.Allow(`/api/`)
	p.Click(`#nav a[data-view="agents"]`)
	p.ClickButton(".card.agent", "Delete")
	p.ClickButton(".card.agent", "Really delete?")
	p.WaitText("#agents-list", "No agents yet")
}

func waitIdle(p *browsertest.Page) {
	p.T.Helper()
	p.WaitFor(`document.getElementById("busy").hidden && !document.querySelector(".streaming")`)
}

func TestDashboardScopesSecretsTokens(t *testing.T) {
	env := startPlatform(t, false)
	p := browsertest.New(t, browsertest.Options{Width: 375, Height: 800})
	signIn(t, p, env)

	// Scopes: create, rename, see in the agent form.
	p.Click(`#nav a[data-view="scopes"]`)
	p.Type("#sc-name", "production")
	p.Type("#sc-desc", "Production environment\n")
	p.WaitText("#scopes-list", "production")
	p.ClickButton(`#scopes-list tr[data-id]`, "Edit")
	p.SetValue(`#scopes-list input[maxlength="100"]`, "prod")
	p.ClickButton("#scopes-list", "Save")
	p.WaitText("#flash", "Scope prod saved")
	p.WaitText("#scopes-list th", "prod")

	// Secrets: org level and in the scope; values never shown.
	p.Click(`#nav a[data-view="secrets"]`)
	p.Type("#sec-key", "ORG_KEY")
	p.Type("#sec-value", "org-secret-value\n")
	p.WaitText("#secrets-list", "ORG_KEY")
	p.Click(`#nav a[data-view="scopes"]`)
	p.ClickButton("#scopes-list", "Secrets")
	p.WaitText("#sec-where option:checked", "prod")
	p.WaitText("#secrets-list", "No secrets")
	p.Type("#sec-key", "DEPLOY_KEY")
	p.Type("#sec-value", "scoped-secret-value\n")
	p.WaitText("#secrets-list", "DEPLOY_KEY")
	p.Type("#sec-key", "DEPLOY_KEY")
	p.Type("#sec-value", "second-value\n")
	p.WaitText("#flash", "Secret DEPLOY_KEY updated")
	html := browsertest.Eval[string](p, `document.documentElement.outerHTML + JSON.stringify([...document.querySelectorAll("input")].map((i) => i.value))`)
	for _, v := range []string{"org-secret-value", "scoped-secret-value", "second-value"} {
		if strings.Contains(html, v) {
			t.Fatalf("secret value %q is on the page", v)
		}
	}
	p.Screenshot("secrets")
	p.ClickButton(`#secrets-list tr[data-key="DEPLOY_KEY"]`, "Delete")
	p.ClickButton(`#secrets-list tr[data-key="DEPLOY_KEY"]`, "Really delete?")
	p.WaitText("#secrets-list", "No secrets")

	// Tokens: create (shown once, focused for copying), it works, revoke.
	p.Click(`#nav a[data-view="tokens"]`)
	p.WaitText("#tokens-body tbody", "Revoke") // the sign-in token
	p.Type("#tokens-body input[maxlength]", "ci-bot\n")
	p.WaitFor(`document.querySelector(".token-value")?.value.startsWith("ah_live_")`)
	if !browsertest.Eval[bool](p, `document.activeElement.classList.contains("token-value")`) {
		t.Error("the new token is not focused")
	}
	created := browsertest.Eval[string](p, `document.querySelector(".token-value").value`)
	env.Client(created).Do(t, "GET", "/api/v1/agents", nil).Want(t, 200)
	p.WaitText("#tokens-body tbody", "ci-bot")
	p.Screenshot("token-created")
	p.ClickButton("#new-token", "Done")
	p.WaitFor(`!document.querySelector(".token-value")`)
	id := browsertest.Eval[string](p, `[...document.querySelectorAll("#tokens-body tbody tr")].find((r) => r.textContent.includes("ci-bot")).dataset.id`)
	row := `#tokens-body tr[data-id="` + id + `"]`
	p.ClickButton(row, "Revoke")
	p.ClickButton(row, "Really revoke?")
	p.WaitText("#flash", "Token ci-bot revoked")
	p.WaitFor(`!document.querySelector('` + row + `')`)
	env.Client(created).Do(t, "GET", "/api/v1/agents", nil).WantError(t, 401, "")
	if browsertest.Eval[bool](p, `document.body.innerHTML.includes("`+created+`")`) {
		t.Fatal("the revoked token is still on the page")
	}

	// Phone width, keyboard focus.
	if w := browsertest.Eval[int](p, `document.documentElement.scrollWidth`); w > 375 {
		t.Errorf("page is %dpx wide at 375px", w)
	}
	p.Screenshot("phone")

	// Delete the scope; sign out clears the token.
	showView(p, "scopes", "#scopes-list")
	p.ClickButton("#scopes-list", "Delete")
	p.ClickButton("#scopes-list", "Really delete?")
	p.WaitText("#scopes-list", "No scopes yet")
	p.Click("#sign-out")
	p.WaitVisible("#signin-token")
	if browsertest.Eval[string](p, `sessionStorage.getItem("agenthost.token") || ""`) != "" {
		t.Fatal("token still stored after sign-out")
	}
}

// showView opens a view from the menu and waits until its list is drawn
// anew: a button clicked in the list drawn before would be replaced by the
// view's refresh (an armed "Really delete?" then disappears).
func showView(p *browsertest.Page, view, list string) {
	p.T.Helper()
	browsertest.Eval[bool](p, fmt.Sprintf(`(() => { for (const e of document.querySelectorAll(%q)) e.dataset.stale = "1"; return true; })()`, list+" > *"))
	p.Click(`#nav a[data-view="` + view + `"]`)
	p.WaitFor(fmt.Sprintf(`document.querySelector(%q)`, list+" > :not([data-stale])"))
}
