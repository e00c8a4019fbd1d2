package coderuntime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/coding"
)

// collector gathers a live event stream in the background.
type collector struct {
	mu      sync.Mutex
	evs     []Event
	changed chan struct{} // closed and replaced at every event
}

// collect streams the events of sessionID ("" for all) from now on.
func (rg *rig) collect(t *testing.T, sessionID string) *collector {
	t.Helper()
	last, err := rg.rt.st.LastEventID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := rg.c.OpenEvents(ctx, last, sessionID)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		for ev, err := range ReadEvents(resp.Body) {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.evs = append(c.evs, ev)
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func (c *collector) find(pred func(Event) bool) (Event, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.evs {
		if pred(e) {
			return e, true
		}
	}
	return Event{}, false
}

// wait checks cond at every event collected until it holds (20 s at
// most).
func (c *collector) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (c *collector) until(t *testing.T, pred func(Event) bool) Event {
	t.Helper()
	var ev Event
	c.wait(t, "an event", func() bool {
		var ok bool
		ev, ok = c.find(pred)
		return ok
	})
	return ev
}

func (c *collector) all() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.evs...)
}

func TestEventsResume(t *testing.T) {
	t.Parallel()
	rg := newRig(t, nil)
	evs := rg.collect(t, "")
	res := rg.send(t, "", `run bash "echo hi"`)
	rg.until(t, evs, "permission", `"state":"pending"`)
	p := rg.pendingPermission(t)
	if err := rg.c.ReplyPermission(ctxT(t), p.ID, coding.Reply{Reply: "once"}); err != nil {
		t.Fatal(err)
	}
	rg.until(t, evs, "status", `"result":"completed"`)
	got := evs.all()
	types := map[string]int{}
	for i, e := range got {
		types[e.Type]++
		if i > 0 && e.ID <= got[i-1].ID {
			t.Fatalf("ids not monotonic: %d after %d", e.ID, got[i-1].ID)
		}
		if e.SessionID != res.SessionID {
			t.Fatalf("event of another session: %+v", e)
		}
	}
	for _, want := range []string{"session", "status", "message", "message.delta", "permission"} {
		if types[want] == 0 {
			t.Fatalf("no %s event in %v", want, types)
		}
	}
	// The tool message shows as the assistant message with its result.
	if _, ok := evs.find(func(e Event) bool {
		return e.Type == "message" && strings.Contains(string(e.Data), `"status":"completed"`) && strings.Contains(string(e.Data), `"tool":"bash"`)
	}); !ok {
		t.Fatal("no message event with the completed tool call")
	}

	// Resume from the middle, by header and by query parameter.
	mid := got[len(got)/2]
	ctx := ctxT(t)
	var replay []Event
	for ev, err := range rg.c.Events(ctx, mid.ID, "") {
		if err != nil {
			t.Fatal(err)
		}
		replay = append(replay, ev)
		if len(replay) == len(got)-len(got)/2-1 {
			break
		}
	}
	for i, e := range replay {
		w := got[len(got)/2+1+i]
		if e.ID != w.ID || e.Type != w.Type || string(e.Data) != string(w.Data) {
			t.Fatalf("replay %d: %+v, want %+v", i, e, w)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/control/events?lastEventId=%d&sessionId=%s", rg.srv.URL, mid.ID, res.SessionID), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	line, _ := br.ReadString('\n')
	resp.Body.Close()
	if line != fmt.Sprintf("id: %d\n", got[len(got)/2+1].ID) {
		t.Fatalf("first line %q", line)
	}

	// A filter on another session sees none of it.
	other := rg.send(t, "", "hello")
	rg.waitIdle(t)
	for ev, err := range rg.c.Events(ctx, 0, other.SessionID) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.SessionID != other.SessionID {
			t.Fatalf("filtered stream has %+v", ev)
		}
		if ev.Type == "status" && strings.Contains(string(ev.Data), "result") {
			break
		}
	}
}

func (rg *rig) until(t *testing.T, c *collector, typ, contains string) Event {
	t.Helper()
	return c.until(t, func(e Event) bool { return e.Type == typ && strings.Contains(string(e.Data), contains) })
}

func upload(t *testing.T, rg *rig, field, name string, body []byte) (int, map[string]any) {
	t.Helper()
	// field "file?sessionId=X" is the field "file", sent with the query.
	u := rg.srv.URL + "/control/files"
	if q, ok := strings.CutPrefix(field, "file?"); ok {
		u, field = u+"?"+q, "file"
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile(field, name)
	fw.Write(body)
	mw.Close()
	req, _ := http.NewRequest("POST", u, &buf)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestUpload(t *testing.T) {
	t.Parallel()
	rg := newRig(t, func(c *Config) { c.MaxUploadFile, c.MaxUploadTotal = 1000, 1500 })
	ws := rg.rt.Workspace()
	res, err := rg.c.Upload(ctxT(t), "data.csv", strings.NewReader("a,b\n1,2\n"))
	if err != nil || res.Name != "data.csv" || res.Size != 8 || res.Path != filepath.Join(ws, "uploads", "data.csv") {
		t.Fatalf("upload: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(res.Path); string(b) != "a,b\n1,2\n" {
		t.Fatalf("content %q", b)
	}
	// Names are reduced to a safe base name inside uploads/.
	for name, want := range map[string]string{"../../evil.txt": "evil.txt", `..\..\win.md`: "win.md", "my file (1).PNG": "my_file__1_.PNG", ".hidden.json": "hidden.json"} {
		code, body := upload(t, rg, "file", name, []byte("x"))
		if code != 200 || body["name"] != want || filepath.Dir(body["path"].(string)) != filepath.Join(ws, "uploads") {
			t.Fatalf("%q: %d %v", name, code, body)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(ws), "evil.txt")); err == nil {
		t.Fatal("a file escaped the workspace")
	}
	bad := []struct{ field, name, why string }{
		{"file", "run.exe", "not allowed"},
		{"file", "noext", "not allowed"},
		{"other", "a.txt", "missing file"},
		{"file", "big.txt", "exceeds"},
	}
	for _, b := range bad {
		body := []byte("x")
		if b.name == "big.txt" {
			body = make([]byte, 1001)
		}
		code, resp := upload(t, rg, b.field, b.name, body)
		if code != 400 || !strings.Contains(fmt.Sprint(resp["error"]), b.why) {
			t.Fatalf("%+v: %d %v", b, code, resp)
		}
	}
	if code, resp := upload(t, rg, "file", "a.txt", make([]byte, 900)); code != 200 {
		t.Fatal(code, resp)
	}
	if code, resp := upload(t, rg, "file", "b.txt", make([]byte, 900)); code != 400 || !strings.Contains(fmt.Sprint(resp["error"]), "total") {
		t.Fatalf("total: %d %v", code, resp)
	}
	if code, resp := upload(t, rg, "file", "a.txt", make([]byte, 950)); code != 200 { // a replacement counts once
		t.Fatalf("replace: %d %v", code, resp)
	}
	// uploads/ as a symlink out of the workspace is refused.
	rg2 := newRig(t, nil)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(rg2.rt.Workspace(), "uploads")); err != nil {
		t.Fatal(err)
	}
	if code, resp := upload(t, rg2, "file", "x.txt", []byte("x")); code != 400 {
		t.Fatalf("symlinked uploads: %d %v", code, resp)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("wrote outside: %v", entries)
	}
	if code, resp := rg.raw(t, "POST", "/control/files", `{"file":"x"}`); code != 400 {
		t.Fatalf("not multipart: %d %v", code, resp)
	}

	// A session page's upload goes to its session's folder; the quota
	// counts every folder.
	rg3 := newRig(t, func(c *Config) { c.MaxUploadFile, c.MaxUploadTotal = 1000, 1500 })
	s := rg3.send(t, "", "hello")
	rg3.waitIdle(t)
	code, body := upload(t, rg3, "file?sessionId="+s.SessionID, "mine.csv", make([]byte, 900))
	if want := filepath.Join(rg3.rt.Workspace(), SessionUploads, s.SessionID, "mine.csv"); code != 200 || body["path"] != want {
		t.Fatalf("a session's upload: %d %v, want %s", code, body, want)
	}
	if code, body := upload(t, rg3, "file", "shared.csv", make([]byte, 900)); code != 400 || !strings.Contains(fmt.Sprint(body["error"]), "total") {
		t.Fatalf("the total over every folder: %d %v", code, body)
	}
	if code, _ := upload(t, rg3, "file?sessionId=ses_nope", "x.csv", []byte("x")); code != 404 {
		t.Fatalf("an unknown session's upload: %d", code)
	}
}

// TestRestartKeepsState closes a runtime while a permission is pending and
// a message is queued, and opens it again on the same workspace.
func TestRestartKeepsState(t *testing.T) {
	t.Parallel()
	rg := newRig(t, nil)
	res := rg.send(t, "", `run bash "echo hi"`)
	p := rg.pendingPermission(t)
	rg.send(t, res.SessionID, "after the restart")
	rg.stop()

	rg2 := startRig(t, rg.cfg)
	rg2.waitIdle(t)
	if err := rg2.c.ReplyPermission(ctxT(t), p.ID, coding.Reply{Reply: "once"}); apiStatus(err) != 409 {
		t.Fatalf("reply to an expired permission: %v", err)
	}
	h := rg2.history(t, res.SessionID)
	tp := toolParts(h)
	if len(tp) != 1 || tp[0].State.Status != "error" {
		t.Fatalf("tool parts: %+v", tp)
	}
	last := h.Messages[len(h.Messages)-2]
	if last.Info.Parts[0].Text != "after the restart" {
		t.Fatalf("the queued message did not run: %+v", h.Messages)
	}
	_ = time.Second
	_ = io.EOF
}
