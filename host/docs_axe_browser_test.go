package host_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/web/browsertest"
)

// The /docs page under axe-core: no accessibility violation of any impact
// (so none serious or critical, and an h1) in any state a visitor sees — the chat empty and with a
// reply, a tool call, an approval and a question waiting, an attachment,
// the API reference — in the light and the dark color scheme. The phone
// layout is checked in TestDocsBrowserPhone.
func TestDocsBrowserAxe(t *testing.T) {
	browsertest.RequireAxe(t)
	p, _ := docsPage(t, "offline/demo", host.WithApproval("danger"))
	p.WaitText("#tools", "add")
	p.CheckAxeAll("empty-chat")
	say(p, "use add on 2 and 3")
	p.WaitText(".tool .state", "completed")
	p.Type("#prompt", `use danger on "launch"`+"\n")
	p.WaitText(".prompt-card.approval", "Allow danger?")
	p.CheckAxeAll("approval")
	p.ClickButton(".prompt-card.approval", "Allow once")
	waitIdle(p)
	p.Type("#prompt", `use ask "favourite colour?"`+"\n")
	p.WaitText(".prompt-card.ask", "favourite colour?")
	p.CheckAxeAll("question")
	p.ClickButton(".prompt-card.ask", "blue")
	waitIdle(p)
	file := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(file, []byte("checked by axe"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Upload("#file-input", file)
	p.WaitText("#attachments .chip", "notes.txt")
	p.CheckAxeAll("attachment")
	p.Click("#attachments .chip button")
	p.WaitFor(`!document.querySelector("#attachments .chip")`)
	p.CheckAxeAll("conversation")
	p.Click(`a[data-tab="reference"]`)
	p.WaitText("#endpoints .endpoint", "/input")
	p.CheckAxeAll("reference")
}
