package platform_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/sse"
	"github.com/agenthost/agenthost/internal/testutil"
)

// newCodingRig starts a platform whose runtimes are the real coding
// runtime: agenthost serve --role coding, built from this module.
func newCodingRig(t *testing.T, pg bool, configure func(*platform.Config)) *rig {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the real runtime")
	}
	cfg := agents.Config{Command: []string{platformtest.Agenthost(t), "serve", "--role", "coding"}}
	return newRigWith(t, pg, cfg, configure)
}

// api is a client of one organization on a rig.
type api struct {
	t *testing.T
	*platformtest.Client
}

func (r *rig) client(org string) *api {
	return &api{t: r.t, Client: r.env.Client(r.env.Token(r.t, org))}
}

func (a *api) get(path string) map[string]any {
	a.t.Helper()
	return a.Do(a.t, "GET", path, nil).Want(a.t, 200)
}

func (a *api) post(path string, body any) map[string]any {
	a.t.Helper()
	return a.Do(a.t, "POST", path, body).Want(a.t, 200)
}

// create creates an agent and returns its id and the create answer.
func (a *api) create(body map[string]any) (string, map[string]any) {
	a.t.Helper()
	got := a.post("/api/v1/agents", body)
	return got["agentId"].(string), got
}

// waitIdle polls GET /api/v1/agents/{id} as the seed's waitForAgent does,
// until busy is false.
func (a *api) waitIdle(id string) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := a.get("/api/v1/agents/" + id)
		if st["busy"] == false {
			return st
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("agent %s still busy after 60 s: %v", id, st)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// history is GET messages of one session.
func (a *api) history(id, sid string) []map[string]any {
	a.t.Helper()
	got := a.get("/api/v1/agents/" + id + "/messages?sessionId=" + sid)
	if got["sessionId"] != sid {
		a.t.Fatalf("messages of %s: sessionId = %v", sid, got["sessionId"])
	}
	return maps(got["messages"])
}

// pendingOne polls a pending list (permissions or questions) until it has
// an item, and returns it.
func (a *api) pendingOne(path, kind string) map[string]any {
	a.t.Helper()
	var items []map[string]any
	testutil.Eventually(a.t, 30*time.Second, "a pending "+kind, func() bool {
		items = maps(a.get(path)[kind])
		return len(items) > 0
	})
	return items[0]
}

func maps(v any) []map[string]any {
	l, _ := v.([]any)
	out := make([]map[string]any, len(l))
	for i, x := range l {
		out[i], _ = x.(map[string]any)
	}
	return out
}

// text is a message's text parts, joined.
func text(m map[string]any) string {
	info, _ := m["info"].(map[string]any)
	var b strings.Builder
	for _, p := range maps(info["parts"]) {
		if p["type"] == "text" {
			b.WriteString(fmt.Sprint(p["text"]))
		}
		if st, ok := p["state"].(map[string]any); ok {
			b.WriteString(fmt.Sprint(st["output"]))
		}
	}
	return b.String()
}

func role(m map[string]any) string {
	info, _ := m["info"].(map[string]any)
	return fmt.Sprint(info["role"])
}

// upload posts a multipart file to url (a path on the platform) with the
// given headers.
func upload(t *testing.T, base, path, name string, size int, header map[string]string) *platformtest.Response {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", name)
		if err == nil {
			chunk := bytes.Repeat([]byte("a,b,c\n"), 1<<14)
			for left := size; left > 0 && err == nil; left -= len(chunk) {
				_, err = fw.Write(chunk[:min(left, len(chunk))])
			}
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", base+path, pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &platformtest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	ID, Type string
	Data     map[string]any
}

// openEvents opens an event stream at path with extra headers and returns
// the events as they come; the stream closes when the test ends.
func openEvents(t *testing.T, url string, header map[string]string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("events: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	t.Cleanup(func() { resp.Body.Close() })
	out := make(chan sseEvent, 1024)
	go func() {
		defer close(out)
		rd := sse.NewReader(resp.Body)
		for {
			e, err := rd.Next()
			if err != nil {
				return
			}
			ev := sseEvent{ID: e.ID, Type: e.Name}
			json.Unmarshal(e.Data, &ev.Data)
			out <- ev
		}
	}()
	return out
}

// next waits for the first event that satisfies match.
func next(t *testing.T, events <-chan sseEvent, what string, match func(sseEvent) bool) sseEvent {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended before %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s within 60 s", what)
		}
	}
}

// pid is the process id of an agent's runtime (process driver).
func (r *rig) pid(id string) int {
	r.t.Helper()
	var st struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(r.handle(id).State, &st); err != nil || st.PID == 0 {
		r.t.Fatalf("agent %s: no pid in the handle: %v", id, err)
	}
	return st.PID
}

type platformtestResponse = platformtest.Response

// clientNoToken sends requests with only the given headers.
type clientNoToken struct{ base string }

func (c *clientNoToken) do(t *testing.T, method, path string, body any, header map[string]string) *platformtest.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &platformtest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}
