package host_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/web/browsertest"
)

// The /docs page in a real browser: a streamed reply, a tool call, the
// conversation continued (also after a reload), an approval, an ask_user
// question and an uploaded file.

// docsPage opens /docs on a fresh host and waits for the WebSocket.
func docsPage(t *testing.T, model string, opts ...host.Option) (*browsertest.Page, *testHost) {
	t.Helper()
	p := browsertest.New(t)
	h := startHost(t, model, opts...)
	p.Navigate(h.URL + "/docs")
	p.WaitText("#conn-state", "connected")
	return p, h
}

// say types a prompt, presses Enter and waits for the run to end.
func say(p *browsertest.Page, prompt string) {
	p.T.Helper()
	n := browsertest.Eval[int](p, `document.querySelectorAll(".msg.user").length`)
	p.Type("#prompt", prompt+"\n")
	p.WaitFor(`document.querySelectorAll(".msg.user").length > ` + strconv.Itoa(n))
	waitIdle(p)
}

func waitIdle(p *browsertest.Page) {
	p.T.Helper()
	p.WaitFor(`document.getElementById("stop").hidden && !document.querySelector(".msg.agent.streaming")`)
}

func lastAgent(p *browsertest.Page) string {
	return browsertest.Eval[string](p, `[...document.querySelectorAll(".msg.agent")].pop()?.textContent ?? ""`)
}

func TestDocsBrowserChat(t *testing.T) {
	t.Setenv("AGENTHOST_OFFLINE_DELAY", "40ms")
	p, _ := docsPage(t, "offline/slow")
	p.WaitText("#agent-name", "translator")
	p.WaitText("#tools", "add")

	// The reply streams: a bubble marked streaming holds part of the answer
	// before the run ends.
	browsertest.Eval[bool](p, `(() => {
		window.streamed = [];
		new MutationObserver(() => {
			const s = document.querySelector(".msg.agent.streaming");
			if (s && s.textContent && s.textContent !== window.streamed.at(-1)) window.streamed.push(s.textContent);
		}).observe(document.body, { subtree: true, childList: true, characterData: true });
		return true;
	})()`)
	p.Type("#prompt", "Hello there, my name is John\n")
	p.WaitText(".msg.user", "my name is John")
	waitIdle(p)
	final := lastAgent(p)
	streamed := browsertest.Eval[[]string](p, `window.streamed`)
	if !strings.HasPrefix(final, "[offline demo model]") || len(streamed) < 3 || len(streamed[0]) >= len(final) {
		t.Fatalf("streamed %q, final %q", streamed, final)
	}
	p.Screenshot("streamed-reply")

	// A tool call is shown with its arguments and result.
	say(p, "use add on 2 and 3")
	p.WaitText(".tool .name", "add")
	p.WaitText(".tool .state", "completed")
	p.WaitText(".tool pre", "5")
	p.Screenshot("tool-call")

	// The conversation continues in the same session.
	session := browsertest.Eval[string](p, `document.getElementById("session-label").textContent`)
	say(p, "what is my name?")
	if got := lastAgent(p); !strings.Contains(got, "John") {
		t.Fatalf("the agent forgot the conversation: %q", got)
	}
	if s := browsertest.Eval[string](p, `document.getElementById("session-label").textContent`); s != session || s == "" {
		t.Fatalf("session changed: %q → %q", session, s)
	}

	// After a reload the history is back and the conversation goes on.
	p.Reload()
	p.WaitText("#conn-state", "connected")
	p.WaitText(".msg.user", "what is my name?")
	p.WaitText(".tool .name", "add")
	say(p, "thanks")
	if n := browsertest.Eval[int](p, `document.querySelectorAll(".msg.user").length`); n != 4 {
		t.Fatalf("%d user messages after reload, want 4", n)
	}
	p.Screenshot("continued")

	// The reference tab replaces the chat.
	p.Click(`a[data-tab="reference"]`)
	p.WaitText("#endpoints .endpoint", "/input")
	if browsertest.Eval[bool](p, `getComputedStyle(document.getElementById("chat")).display !== "none"`) {
		t.Fatal("chat still shown on the reference tab")
	}
	p.Screenshot("reference")
}

func TestDocsBrowserApprovalAskUpload(t *testing.T) {
	p, h := docsPage(t, "offline/demo", host.WithApproval("danger"))

	// An approval: the card appears, focused; Allow once runs the tool.
	p.Type("#prompt", `use danger on "launch"`+"\n")
	p.WaitText(".prompt-card.approval", "Allow danger?")
	if !browsertest.Eval[bool](p, `document.activeElement?.textContent === "Allow once"`) {
		t.Error("the approval's first button is not focused")
	}
	p.Screenshot("approval")
	p.Click(".prompt-card.approval button:first-of-type")
	p.WaitText(".tool pre", "did launch")
	waitIdle(p)

	// A denial with a reason the agent sees.
	p.Type("#prompt", `use danger on "again"`+"\n")
	p.WaitFor(`document.querySelectorAll(".prompt-card.approval").length === 2`)
	p.Type(".prompt-card.approval input[type=text]:not(:disabled)", "not today")
	p.ClickButton(".prompt-card.approval", "Deny")
	waitIdle(p)
	p.WaitText(".tool .state", "failed")

	// An ask_user question answered with one of its options.
	p.Type("#prompt", `use ask "favourite colour?"`+"\n")
	p.WaitText(".prompt-card.ask", "favourite colour?")
	p.Screenshot("question")
	p.ClickButton(".prompt-card.ask", "blue")
	p.WaitText(".tool pre", "the user said blue")
	waitIdle(p)

	// A file attached to a message lands in the host's uploads.
	file := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(file, []byte("hello from the browser"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Upload("#file-input", file)
	p.WaitText("#attachments .chip", "notes.txt")
	p.Screenshot("attached")
	p.Type("#prompt", "what is in the file?\n")
	p.WaitText(".msg.user", "[notes.txt]")
	waitIdle(p)
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Uploads are kept per caller: <co_dir>/uploads/<caller>/<file>.
		entries, _ := filepath.Glob(filepath.Join(h.dir, ".co", "uploads", "*", "*"))
		found := false
		for _, e := range entries {
			b, _ := os.ReadFile(e)
			found = found || (strings.HasSuffix(e, "notes.txt") && string(b) == "hello from the browser")
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notes.txt not uploaded: %v", entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Screenshot("uploaded")
}

// On a phone the prompt box is on the first screen, before and after a
// conversation longer than the screen (the messages scroll, not the page),
// nothing covers it, the page is no wider than the screen, axe-core finds
// nothing serious, and the attach control shows keyboard focus.
func TestDocsBrowserPhone(t *testing.T) {
	for _, c := range []struct{ width, height int }{{390, 844}, {375, 667}} {
		t.Run(fmt.Sprintf("%dx%d", c.width, c.height), func(t *testing.T) {
			p := browsertest.New(t, browsertest.Options{Width: c.width, Height: c.height})
			h := startHost(t, "offline/demo")
			p.Navigate(h.URL + "/docs")
			p.WaitText("#conn-state", "connected")
			p.WaitText("#agent-name", "translator") // /info shown: the header has its final height
			if w := browsertest.Eval[int](p, `document.documentElement.scrollWidth`); w > c.width {
				t.Errorf("page is %dpx wide at %dpx", w, c.width)
			}
			promptOnFirstScreen(t, p, "on arrival")
			// The conversation comes first, for the keyboard and on the
			// screen; the agent's details follow under it.
			if !browsertest.Eval[bool](p, `(() => {
				const c = document.getElementById("conversation"), a = document.getElementById("about");
				return !!(c.compareDocumentPosition(a) & Node.DOCUMENT_POSITION_FOLLOWING) && a.getBoundingClientRect().top >= c.getBoundingClientRect().bottom;
			})()`) {
				t.Error("the agent's details do not follow the conversation")
			}
			p.CheckAxeAll("phone")
			p.Screenshot("phone")

			for i := range 4 {
				say(p, fmt.Sprintf("message %d: tell me a long story that takes more than one screen to read", i))
			}
			if !browsertest.Eval[bool](p, `(() => { const m = document.getElementById("messages"); return m.scrollHeight > m.clientHeight; })()`) {
				t.Error("the conversation does not overflow its box: the check below proves nothing")
			}
			browsertest.Eval[bool](p, `(() => { window.scrollTo(0, 0); return true; })()`)
			promptOnFirstScreen(t, p, "after a long conversation")
			p.Screenshot("phone-conversation")

			// Keyboard only: the attach control is reachable and focus is visible.
			p.Focus("#file-input")
			if browsertest.Eval[string](p, `getComputedStyle(document.querySelector(".attach")).outlineStyle`) == "none" {
				t.Error("no visible focus on the attach control")
			}
		})
	}
}

// promptOnFirstScreen fails the test unless the prompt box and the Send
// button lie wholly within the viewport with the page scrolled to the top,
// and are what a tap at their centre reaches.
func promptOnFirstScreen(t *testing.T, p *browsertest.Page, when string) {
	t.Helper()
	type box struct {
		Top, Bottom, Left, Right, ScrollY, Width, Height float64
		Hit                                              bool
	}
	for _, sel := range []string{"#prompt", "#send"} {
		b := browsertest.Eval[box](p, fmt.Sprintf(`(() => {
			const e = document.querySelector(%q), r = e.getBoundingClientRect();
			return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, scrollY: window.scrollY,
				width: window.innerWidth, height: window.innerHeight,
				hit: e.contains(document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2)) };
		})()`, sel))
		if b.ScrollY != 0 || b.Top < 0 || b.Left < 0 || b.Bottom > b.Height || b.Right > b.Width || b.Bottom <= b.Top || !b.Hit {
			p.Screenshot("not-on-first-screen")
			t.Errorf("%s: %s is not on the first screen of %v×%v: %+v", when, sel, b.Width, b.Height, b)
		}
	}
}
