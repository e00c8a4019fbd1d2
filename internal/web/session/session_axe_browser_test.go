package session_test

import (
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/web/browsertest"
)

// The session page's states under axe-core, against fakeAPI: no
// violation of any impact (so none serious or critical), in the light and
// the dark color scheme, on a desktop and on a phone. It found the "Live" pill's text below 4.5:1
// contrast (green on the pill's grey), the "Working…" pill's at 4.34:1,
// and a failed turn's red at 3.3:1 in the dark scheme.
func TestSessionPageBrowserAxe(t *testing.T) {
	browsertest.RequireAxe(t)
	for _, c := range []struct {
		name          string
		width, height int
	}{{"desktop", 0, 0}, {"phone", 390, 844}} {
		t.Run(c.name, func(t *testing.T) {
			p, f := open(t, browsertest.Options{Width: c.width, Height: c.height})
			p.CheckAxeAll("live-empty")

			f.setDelay(0)
			send(p, "hello agent")
			p.WaitText(".msg.assistant", "That is all I know, friend.")
			waitIdle(p)
			p.Click("#usage summary")
			p.CheckAxeAll("conversation-usage")

			send(p, "run bash ls")
			p.WaitText(".card.permission", "Allow bash?")
			p.WaitVisible("#busy")
			p.CheckAxeAll("permission-busy")
			p.ClickButton(".card.permission", "Allow once")
			p.WaitText(".tool .output", "ran: ls")
			waitIdle(p)
			p.Click(".tool summary")
			p.CheckAxeAll("tool-open")

			send(p, "run bash org cat ../x")
			p.WaitText(".card.permission", "Waiting for the organization")
			p.CheckAxeAll("waiting-for-organization")
			f.orgReply("once")
			p.WaitFor(`!document.querySelector(".card.permission")`)
			waitIdle(p)

			send(p, "ask many")
			p.WaitText(".card.question", "Which colours?")
			p.ClickButton(".card.question", "Submit answer")
			p.WaitText("#alert", "Choose an answer")
			p.CheckAxeAll("question-alert")
			p.Click(`.card.question input[value="Red"]`)
			p.ClickButton(".card.question", "Submit answer")
			waitIdle(p)

			send(p, "fail")
			p.WaitFor(`document.querySelector(".msg.assistant.error, .note.error")`)
			waitIdle(p)
			p.CheckAxeAll("failed-turn")
		})
	}
}

// A bad or expired session link opened in a browser, on a real platform:
// the HTML error page (not the API's JSON) says what happened and what to
// do, and has no axe finding of any impact. Before, the browser
// showed {"error":"session not found"}.
func TestSessionLinkErrorPage(t *testing.T) {
	env := platformtest.Start(t, platformtest.Options{})
	// A capability the platform minted, for an agent that no longer
	// exists: an expired link.
	expired := env.Server.API().SessionURL("ag_gone", "ses_1")
	expired = env.URL + expired[strings.Index(expired, "/a/"):]
	for _, c := range []struct {
		name, url, status, says string
		width, height           int
	}{
		{"no-capability", env.URL + "/a/ag_1/session/ses_1", "401", "missing its access key", 0, 0},
		{"wrong-capability", env.URL + "/a/ag_1/session/ses_1?cap=wrong", "404", "wrong or has expired", 0, 0},
		{"expired", expired, "404", "wrong or has expired", 390, 844},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := browsertest.New(t, browsertest.Options{Width: c.width, Height: c.height})
			p.Allow(c.status) // the browser logs the page's status
			p.Navigate(c.url)
			p.WaitText("h1", "session link")
			p.WaitText("#what", c.says)
			p.WaitText("#todo", "organisation that gave")
			if body := browsertest.Eval[string](p, `document.body.innerText`); strings.Contains(body, `"error"`) {
				t.Fatalf("the page shows the JSON error: %s", body)
			}
			p.Screenshot(c.name)
			p.CheckAxeAll("error-" + c.name)
		})
	}
}
