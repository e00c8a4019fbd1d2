package dashboard_test

import (
	"testing"

	"github.com/agenthost/agenthost/internal/web/browsertest"
)

// Every view of the dashboard under axe-core, on a platform without
// runtimes (an agent that cannot start shows its error): no accessibility
// violation of any impact (so none serious or critical), in the light and the dark color
// scheme, on a desktop and on a phone. The states that need a running
// agent (RUNNING, busy, sessions, the usage chart) are checked in
// TestDashboardCreateAgentAndSessionPage.
func TestDashboardBrowserAxe(t *testing.T) {
	browsertest.RequireAxe(t)
	env := startPlatform(t, false)
	for _, c := range []struct {
		name          string
		width, height int
	}{{"desktop", 0, 0}, {"phone", 390, 844}} {
		t.Run(c.name, func(t *testing.T) {
			p := browsertest.New(t, browsertest.Options{Width: c.width, Height: c.height})
			p.Allow(`401`) // the refused token below
			// The agent cannot start without runtimes: its creation
			// answers 503 and the card shows the error.
			p.Allow(`status of 503 .*/api/v1/agents\)$`)

			p.Navigate(env.URL + "/")
			p.WaitVisible("#signin-token")
			p.CheckAxeAll("sign-in")
			p.Type("#signin-token", "ah_live_wrong\n")
			p.WaitText("#error", "refused")
			p.CheckAxeAll("sign-in-refused")
			p.SetValue("#signin-token", "")
			p.Type("#signin-token", env.token+"\n")
			p.WaitText("#agents-list", "No agents yet")
			p.CheckAxeAll("agents-empty")

			p.Click("#create-agent summary")
			p.Type("#ca-name", "axe-bot-"+c.name)
			p.Click("#ca-submit")
			p.WaitText(".card.agent h2", "axe-bot-"+c.name)
			p.WaitText(".card.agent .pill", "ERROR")
			p.CheckAxeAll("agents-error")

			p.Click(`#nav a[data-view="scopes"]`)
			p.Type("#sc-name", "axe-scope-"+c.name)
			p.Type("#sc-desc", "Checked by axe\n")
			p.WaitText("#scopes-list", "axe-scope-"+c.name)
			p.CheckAxeAll("scopes")
			p.ClickButton(`#scopes-list tr[data-id]`, "Edit")
			p.WaitVisible(`#scopes-list input[maxlength="100"]`)
			p.CheckAxeAll("scopes-edit")
			p.ClickButton("#scopes-list", "Cancel")

			p.Click(`#nav a[data-view="secrets"]`)
			p.Type("#sec-key", "AXE_KEY")
			p.Type("#sec-value", "axe-secret\n")
			p.WaitText("#secrets-list", "AXE_KEY")
			p.CheckAxeAll("secrets")
			p.ClickButton(`#secrets-list tr[data-key="AXE_KEY"]`, "Delete")
			p.CheckAxeAll("secrets-confirm-delete")

			p.Click(`#nav a[data-view="tokens"]`)
			p.WaitText("#tokens-body tbody", "Revoke")
			p.Type("#tokens-body input[maxlength]", "axe-token\n")
			p.WaitFor(`document.querySelector(".token-value")?.value.startsWith("ah_live_")`)
			p.CheckAxeAll("tokens-created")

			p.Click(`#nav a[data-view="usage"]`)
			p.WaitText("#usage-agent", "axe-bot-"+c.name)
			p.WaitText("#usage-body", "start it to see its usage")
			p.CheckAxeAll("usage")

			p.Click(`#nav a[data-view="agents"]`)
			p.WaitText(".card.agent h2", "axe-bot-"+c.name)
			p.ClickButton(".card.agent", "Delete")
			p.CheckAxeAll("agents-confirm-delete")
			p.ClickButton(".card.agent", "Really delete?")
			p.WaitText("#agents-list", "No agents yet")
		})
	}
}
