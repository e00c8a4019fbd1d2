package session_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/web/browsertest"
)

// The session page in a real browser, against fakeAPI: a real HTTP server
// with the capability API of the platform.

func open(t *testing.T, opts ...browsertest.Options) (*browsertest.Page, *fakeAPI) {
	t.Helper()
	f := newFakeAPI(t)
	p := browsertest.New(t, opts...)
	p.Navigate(f.URL())
	p.WaitText("#conn", "Live")
	p.WaitText("#title", "Fake session")
	return p, f
}

// send types a message and presses Enter.
func send(p *browsertest.Page, text string) {
	p.T.Helper()
	p.Type("#prompt", text+"\n")
}

// watchStreaming records every text a streaming bubble shows, in
// window.streamed, however fast it goes.
func watchStreaming(p *browsertest.Page) {
	browsertest.Eval[bool](p, `(() => {
		window.streamed = [];
		new MutationObserver(() => {
			const s = document.querySelector(".streaming");
			if (s && s.textContent && s.textContent !== window.streamed.at(-1)) window.streamed.push(s.textContent);
		}).observe(document.body, { subtree: true, childList: true, characterData: true });
		return true;
	})()`)
}

func waitIdle(p *browsertest.Page) {
	p.T.Helper()
	p.WaitFor(`document.getElementById("busy").hidden && !document.querySelector(".streaming")`)
}

func TestSessionPageChat(t *testing.T) {
	p, f := open(t)
	f.setDelay(60 * time.Millisecond)
	watchStreaming(p)
	send(p, "hello agent")
	p.WaitText(".msg.user", "hello agent")
	p.WaitFor(`window.streamed.length > 0`)
	p.Screenshot("streaming")
	waitIdle(p)
	final := p.WaitText(".msg.assistant", "That is all I know, friend.")
	streamed := browsertest.Eval[[]string](p, `window.streamed`)
	if len(streamed) < 3 || len(streamed[0]) >= len(final) {
		t.Errorf("no streaming seen: %q, final %q", streamed, final)
	}
	// One bubble per message: the optimistic one was replaced.
	if n := browsertest.Eval[int](p, `document.querySelectorAll(".msg.user").length`); n != 1 {
		t.Errorf("%d user bubbles", n)
	}
	p.WaitText("#usage-summary", "$0.0012")

	// A tool call and its result are shown; continue the conversation.
	send(p, "run bash ls -la")
	p.WaitText(".card.permission", "Allow bash?")
	p.ClickButton(".card.permission", "Allow once")
	p.WaitText(".tool .output", "ran: ls -la")
	p.WaitText(".tool .state", "done")
	waitIdle(p)
	send(p, "and again")
	p.WaitText(".msg.assistant", "You said: and again")
	waitIdle(p)
	if n := browsertest.Eval[int](p, `document.querySelectorAll(".msg.user").length`); n != 3 {
		t.Errorf("%d user bubbles, want 3", n)
	}
	p.WaitText("#usage-summary", "$0.0036")

	// A reload shows the same conversation from the history.
	p.Reload()
	p.WaitText("#conn", "Live")
	p.WaitText(".msg.assistant", "You said: and again")
	p.WaitText(".tool .output", "ran: ls -la")
	p.Screenshot("history")
}

func TestSessionPagePermissionsQuestionsUploads(t *testing.T) {
	p, f := open(t)

	// Reject with a reason.
	send(p, "run bash rm -rf /")
	p.WaitText(".card.permission", "rm -rf /")
	p.Screenshot("permission")
	p.Type(".card.permission input[type=text]", "too dangerous")
	p.ClickButton(".card.permission", "Reject")
	p.WaitText(".note", "rejected")
	p.WaitFor(`!document.querySelector(".card.permission")`)
	waitIdle(p)

	// Always allow.
	send(p, "run bash make")
	p.WaitText(".card.permission", "make")
	p.ClickButton(".card.permission", "Always allow here")
	p.WaitText(".tool .output", "ran: make")
	waitIdle(p)

	// A single-select question: radio buttons, answered by keyboard.
	send(p, "ask")
	p.WaitText(".card.question", "Which colours?")
	if n := browsertest.Eval[int](p, `document.querySelectorAll(".card.question input[type=radio]").length`); n != 3 {
		t.Fatalf("%d radio buttons", n)
	}
	p.Screenshot("question")
	p.Click(`.card.question input[value="Green"]`)
	p.ClickButton(".card.question", "Submit answer")
	p.WaitText(".msg.assistant", `You chose [["Green"]]`)
	waitIdle(p)

	// A multi-select question: checkboxes, and nothing chosen is refused.
	send(p, "ask many")
	p.WaitText(".card.question", "(choose any)")
	p.ClickButton(".card.question", "Submit answer")
	p.WaitText("#alert", "Choose an answer")
	p.Click(`.card.question input[value="Red"]`)
	p.Click(`.card.question input[value="Blue"]`)
	p.Screenshot("multi-select")
	p.ClickButton(".card.question", "Submit answer")
	p.WaitText(".msg.assistant", `You chose [["Red","Blue"]]`)
	waitIdle(p)

	// Upload.
	file := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(file, []byte("a,b\n1,2\n"), 0o644)
	p.Upload("#file", file)
	p.WaitText("#uploads li", "/workspace/uploads/data.csv")
	p.WaitText(".note", "Uploaded data.csv")
	f.mu.Lock()
	got := f.uploads["data.csv"]
	f.mu.Unlock()
	if got != "a,b\n1,2\n" {
		t.Fatalf("uploaded %q", got)
	}

	// Abort a long answer.
	send(p, "slow")
	p.WaitFor(`document.querySelector(".streaming")`)
	p.Click("#abort")
	p.WaitText(".note", "Stopped.")
	waitIdle(p)
	f.mu.Lock()
	aborted := f.aborted
	f.mu.Unlock()
	if aborted != 1 {
		t.Fatalf("aborted %d times", aborted)
	}
	p.Screenshot("done")
}

// A dropped event stream reconnects with the last event id and loses
// nothing, also what happened while it was down.
func TestSessionPageReconnect(t *testing.T) {
	p, f := open(t)
	p.Allow(`events`) // the browser logs the dropped stream
	f.setDelay(40 * time.Millisecond)
	send(p, "first message before the drop")
	p.WaitFor(`document.querySelector(".streaming")`)
	f.dropStreams()
	p.WaitText(".msg.assistant", "You said: first message before the drop. That is all I know, friend.")
	waitIdle(p)

	// Events right as the stream drops.
	f.dropStreams()
	go f.turn(t.Context(), "msg_900", "sent while you were away")
	p.WaitText(".msg.assistant", "You said: sent while you were away. That is all I know, friend.")
	waitIdle(p)
	texts := browsertest.Eval[[]string](p, `[...document.querySelectorAll(".msg.assistant")].map((e) => e.textContent)`)
	if len(texts) != 2 {
		t.Fatalf("assistant messages after reconnects: %q", texts)
	}
	f.mu.Lock()
	opens := append([]string(nil), f.sseOpens...)
	f.mu.Unlock()
	if len(opens) < 2 || opens[0] != "" || opens[1] == "" {
		t.Fatalf("event stream opens (Last-Event-ID): %q", opens)
	}
	p.Screenshot("after-reconnect")
}

// The page inside an <iframe> on another site (localhost vs 127.0.0.1).
func TestSessionPageInIframe(t *testing.T) {
	f := newFakeAPI(t)
	src := f.URL()
	outer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><html><head><link rel="icon" href="data:,"><title>Host app</title></head><body>
<h1>My app</h1><iframe id="agent" src=%q style="width:100%%;height:600px;border:1px solid #ccc" allow="clipboard-read; clipboard-write"></iframe></body></html>`, src)
	}))
	t.Cleanup(outer.Close)
	outerURL := strings.Replace(outer.URL, "127.0.0.1", "localhost", 1)

	p := browsertest.New(t)
	p.Navigate(outerURL)
	frame := p.Frame(f.srv.URL)
	frame.WaitText("#conn", "Live")
	send(frame, "hello from the embedding app")
	frame.WaitText(".msg.assistant", "You said: hello from the embedding app")
	waitIdle(frame)
	send(frame, "run bash echo hi")
	frame.ClickButton(".card.permission", "Allow once")
	frame.WaitText(".tool .output", "ran: echo hi")
	p.Screenshot("iframe")
}

func TestSessionPagePhoneWidth(t *testing.T) {
	p, _ := open(t, browsertest.Options{Width: 375, Height: 740})
	send(p, "ask many")
	p.WaitText(".card.question", "Which colours?")
	if w := browsertest.Eval[int](p, `document.documentElement.scrollWidth`); w > 375 {
		t.Errorf("page is %dpx wide at 375px", w)
	}
	// Keyboard: focus moved to the question; Tab reaches the controls.
	if !browsertest.Eval[bool](p, `document.activeElement.closest(".card.question") !== null`) {
		t.Error("focus did not move to the question")
	}
	p.Screenshot("phone")
}

func TestSessionPageWithoutCapability(t *testing.T) {
	f := newFakeAPI(t)
	p := browsertest.New(t)
	p.Allow(`404`)
	p.Navigate(f.srv.URL + f.page + "?cap=wrong")
	p.WaitText("#conn", "No access")
	p.WaitText("#alert", "session not found")
}

// A permission the page may not answer shows as waiting for the
// organization, without buttons, until the organization replies.
func TestSessionPageWaitsForOrganization(t *testing.T) {
	p, f := open(t)
	// A request beyond the session: only the organization may approve.
	send(p, "run bash org cat ../other/upload.csv")
	p.WaitText(".card.permission", "Waiting for the organization to allow bash")
	p.WaitText(".card.permission", "Only the organization")
	if n := browsertest.Eval[int](p, `document.querySelectorAll(".card.permission button").length`); n != 0 {
		t.Fatalf("%d buttons on a request the page cannot answer", n)
	}
	p.Screenshot("waiting-for-organization")
	f.orgReply("once")
	p.WaitFor(`!document.querySelector(".card.permission")`)
	p.WaitText(".tool .output", "ran: cat ../other/upload.csv")
	waitIdle(p)

	// The organization turned the page's permission replies off.
	f.mu.Lock()
	f.pagePerms = false
	f.mu.Unlock()
	p.Reload()
	p.WaitText("#conn", "Live")
	send(p, "run bash ls")
	p.WaitText(".card.permission", "Waiting for the organization to allow bash")
	if n := browsertest.Eval[int](p, `document.querySelectorAll(".card.permission button").length`); n != 0 {
		t.Fatalf("%d buttons with page replies off", n)
	}
	// Questions are still the page's.
	f.orgReply("reject")
	waitIdle(p)
	send(p, "ask")
	p.Click(`.card.question input[value="Red"]`)
	p.ClickButton(".card.question", "Submit answer")
	p.WaitText(".msg.assistant", `You chose [["Red"]]`)
}

// A turn whose model call fails shows in the conversation as a failed
// answer with the provider's message, also after a reload.
func TestSessionPageFailedTurn(t *testing.T) {
	p, _ := open(t)
	send(p, "fail")
	p.WaitText(".msg.assistant.failed", "The model call failed: openai: HTTP 429: rate limit reached")
	p.WaitText(".note.error", "rate limit reached")
	waitIdle(p)
	p.Screenshot("failed-turn")
	p.Reload()
	p.WaitText("#conn", "Live")
	p.WaitText(".msg.assistant.failed", "rate limit reached")
}

// recordTexts records, in window.seen, every text the log's loading and
// empty lines show while visible, however briefly.
func recordTexts(p *browsertest.Page) {
	browsertest.Eval[bool](p, `(() => {
		window.seen = [];
		const look = () => {
			for (const id of ["loading", "empty"]) {
				const e = document.getElementById(id);
				if (e && !e.hidden && e.textContent && e.textContent !== window.seen.at(-1)) window.seen.push(e.textContent);
			}
		};
		look();
		new MutationObserver(look).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
		return true;
	})()`)
}

// A session with history shows "Loading…" until its history is in, then
// the history — never "No messages yet" — and an empty session shows the
// empty text only once its history says it is empty.
func TestSessionPageLoadsHistory(t *testing.T) {
	f := newFakeAPI(t)
	f.messages = []map[string]any{
		msg("msg_1", "user", text("what did we say?")),
		msg("msg_2", "assistant", text("We said hello.")),
	}
	gate := make(chan struct{})
	f.historyGate = gate
	p := browsertest.New(t)
	p.Navigate(f.URL())
	p.WaitText("#loading", "Loading…")
	recordTexts(p)
	p.WaitText("#conn", "Live") // the page has asked for the history; it is held
	if !browsertest.Eval[bool](p, `document.getElementById("empty").hidden && document.getElementById("log").getAttribute("aria-busy") === "true" && document.getElementById("loading").getAttribute("role") === "status"`) {
		t.Error("while loading: the empty text shows, or the log is not aria-busy, or Loading… is not a status")
	}
	p.Screenshot("loading")
	close(gate)
	p.WaitText(".msg.assistant", "We said hello.")
	p.WaitFor(`document.getElementById("loading").hidden && document.getElementById("log").getAttribute("aria-busy") === "false"`)
	if seen := browsertest.Eval[[]string](p, `window.seen`); len(seen) != 1 || seen[0] != "Loading…" {
		t.Errorf("texts shown before the history: %q, want only Loading…", seen)
	}
	if !browsertest.Eval[bool](p, `document.getElementById("empty").hidden`) {
		t.Error("No messages yet shown beside the history")
	}

	// An empty session: Loading…, then the empty text.
	e := newFakeAPI(t)
	q := browsertest.New(t)
	q.Navigate(e.URL())
	q.WaitText("#empty", "No messages yet")
	q.WaitFor(`document.getElementById("loading").hidden && !document.getElementById("empty").hidden`)
}

// A history that cannot be loaded says so where the messages would be.
func TestSessionPageHistoryFails(t *testing.T) {
	f := newFakeAPI(t)
	f.historyErr = "agent is not responding"
	p := browsertest.New(t)
	p.Allow(`500`)
	p.Navigate(f.URL())
	p.WaitText("#loading", "Could not load the messages: agent is not responding")
	p.WaitText("#alert", "agent is not responding")
	if !browsertest.Eval[bool](p, `document.getElementById("empty").hidden`) {
		t.Error("No messages yet shown for a history that failed to load")
	}
	// It recovers by itself once the history can be read.
	f.mu.Lock()
	f.historyErr = ""
	f.mu.Unlock()
	p.WaitFor(`document.getElementById("loading").hidden && !document.getElementById("empty").hidden`)
}
