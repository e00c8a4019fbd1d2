package host_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

// The A2A front end (docs/a2a.md), spoken here as raw JSON-RPC so each
// test sees the wire; a2a_sdkjs_test.go drives it with the A2A JS SDK.

var rpcID atomic.Int64

// a2aBody is a JSON-RPC request body.
func a2aBody(t testing.TB, method string, params any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": rpcID.Add(1), "method": method, "params": params})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// a2aPost posts a JSON-RPC body to /a2a.
func a2aPost(t testing.TB, base string, body []byte, hdr ...string) (int, map[string]any) {
	t.Helper()
	code, m, h := do(t, "POST", base+host.A2APath, body, hdr...)
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("POST /a2a answered %d with Content-Type %q, want application/json", code, ct)
	}
	return code, m
}

// a2aCall sends method with params and returns the result, failing on an
// error.
func a2aCall(t testing.TB, base, method string, params any, hdr ...string) map[string]any {
	t.Helper()
	code, m := a2aPost(t, base, a2aBody(t, method, params), hdr...)
	if code != 200 || m["error"] != nil {
		t.Fatalf("%s: %d %v", method, code, m)
	}
	r, _ := m["result"].(map[string]any)
	return r
}

// a2aErr sends method with params and returns the JSON-RPC error.
func a2aErr(t testing.TB, base, method string, params any, hdr ...string) map[string]any {
	t.Helper()
	code, m := a2aPost(t, base, a2aBody(t, method, params), hdr...)
	e, _ := m["error"].(map[string]any)
	if code != 200 || e == nil {
		t.Fatalf("%s: want a JSON-RPC error, got %d %v", method, code, m)
	}
	return e
}

var msgSeq atomic.Int64

// userMsg is an A2A user message with one text part; extra members
// (contextId, taskId) are added.
func userMsg(text string, extra ...any) map[string]any {
	m := map[string]any{"kind": "message", "role": "user", "messageId": fmt.Sprintf("m-%d", msgSeq.Add(1)),
		"parts": []any{map[string]any{"kind": "text", "text": text}}}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

func send(t testing.TB, base string, msg map[string]any, hdr ...string) map[string]any {
	t.Helper()
	return a2aCall(t, base, "message/send", map[string]any{"message": msg}, hdr...)
}

func taskState(task map[string]any) string {
	st, _ := task["status"].(map[string]any)
	s, _ := st["state"].(string)
	return s
}

// taskResult is the text of a task's "result" artifact.
func taskResult(task map[string]any) string {
	arts, _ := task["artifacts"].([]any)
	var b strings.Builder
	for _, a := range arts {
		am, _ := a.(map[string]any)
		parts, _ := am["parts"].([]any)
		for _, p := range parts {
			pm, _ := p.(map[string]any)
			s, _ := pm["text"].(string)
			b.WriteString(s)
		}
	}
	return b.String()
}

// statusData is the data part of a task's status message.
func statusData(task map[string]any) map[string]any {
	st, _ := task["status"].(map[string]any)
	msg, _ := st["message"].(map[string]any)
	parts, _ := msg["parts"].([]any)
	for _, p := range parts {
		pm, _ := p.(map[string]any)
		if d, ok := pm["data"].(map[string]any); ok {
			return d
		}
	}
	return nil
}

// TestA2ACard: the card names the agent, its summary, examples, tools, the
// JSON-RPC url, streaming, the signing extension and its security scheme;
// under strict the scheme is required and so is the extension.
func TestA2ACard(t *testing.T) {
	for _, level := range []string{"careful", "strict"} {
		t.Run(level, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir+"/.co/host.yaml", "summary: Translates things.\nexamples:\n  - translate hello\n")
			h := startHost(t, "offline/demo", host.WithDir(dir), host.WithCoDir(dir+"/.co"), host.WithTrust(level))
			code, card, hd := do(t, "GET", h.URL+host.A2AAgentCardPath, nil)
			wantStatus(t, code, 200, card)
			if !strings.HasPrefix(hd.Get("Content-Type"), "application/json") {
				t.Fatalf("content type %q", hd.Get("Content-Type"))
			}
			if card["name"] != "translator" || card["description"] != "Translates things." || card["url"] != h.URL+"/a2a" ||
				card["protocolVersion"] != "0.3.0" || card["preferredTransport"] != "JSONRPC" {
				t.Fatalf("card: %v", card)
			}
			caps := card["capabilities"].(map[string]any)
			if caps["streaming"] != true {
				t.Fatalf("capabilities: %v", caps)
			}
			ext := caps["extensions"].([]any)[0].(map[string]any)
			if ext["uri"] != host.A2ASignedExtension || (ext["required"] == true) != (level == "strict") {
				t.Fatalf("extension: %v", ext)
			}
			skills := card["skills"].([]any)
			first := skills[0].(map[string]any)
			if first["examples"].([]any)[0] != "translate hello" {
				t.Fatalf("skills: %v", skills)
			}
			var tools []string
			for _, s := range skills[1:] {
				tools = append(tools, s.(map[string]any)["id"].(string))
			}
			if !strings.Contains(strings.Join(tools, ","), "tool:danger") {
				t.Fatalf("tool skills: %v", tools)
			}
			schemes := card["securitySchemes"].(map[string]any)
			sch := schemes["agenthostSignature"].(map[string]any)
			if sch["type"] != "apiKey" || sch["name"] != host.A2AEnvelopeHeader || sch["in"] != "header" {
				t.Fatalf("scheme: %v", sch)
			}
			if _, has := card["security"]; has != (level == "strict") {
				t.Fatalf("security under %s: %v", level, card["security"])
			}
		})
	}
}

// TestA2AContextIsSession: message/send runs the agent and returns a
// completed task with the answer as its artifact; the contextId is a host
// session (GET /sessions/{id} shows it), the next message in that context
// continues the conversation, and tasks/get reads each task back, the
// earlier one too.
func TestA2AContextIsSession(t *testing.T) {
	h := startHost(t, "offline/demo")
	t1 := send(t, h.URL, userMsg("my name is Ada"))
	if taskState(t1) != "completed" || !strings.Contains(taskResult(t1), "offline") {
		t.Fatalf("task: %v", t1)
	}
	ctxID := t1["contextId"].(string)
	code, sess, _ := do(t, "GET", h.URL+"/sessions/"+ctxID, nil)
	wantStatus(t, code, 200, sess)
	t2 := send(t, h.URL, userMsg("what is my name?", "contextId", ctxID))
	if t2["contextId"] != ctxID || !strings.Contains(taskResult(t2), "Ada") {
		t.Fatalf("second task: %v", t2)
	}
	if t2["id"] == t1["id"] {
		t.Fatal("two runs, one task id")
	}
	got := a2aCall(t, h.URL, "tasks/get", map[string]any{"id": t1["id"]})
	if taskState(got) != "completed" || taskResult(got) != taskResult(t1) {
		t.Fatalf("tasks/get of the first task: %v", got)
	}
	hist := got["history"].([]any)
	if len(hist) < 2 || hist[0].(map[string]any)["role"] != "user" {
		t.Fatalf("history: %v", hist)
	}
	e := a2aErr(t, h.URL, "tasks/get", map[string]any{"id": ctxID + "~msg_nothere"})
	if e["code"] != float64(-32001) {
		t.Fatalf("unknown task: %v", e)
	}
}

// TestA2AOwnerScoped: a context belongs to its caller as a session does.
// Another signed caller naming it gets a context of its own, and cannot
// read, cancel or answer the first caller's tasks; nor can an anonymous
// caller.
func TestA2AOwnerScoped(t *testing.T) {
	h := startTrustHost(t, t.TempDir())
	alice, bob := newIdentity(t), newIdentity(t)
	as := func(id *trust.Identity, method string, params any) (int, map[string]any) {
		body := a2aBody(t, method, params)
		env, err := host.SignA2A(id, h.Address(), time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		return a2aPost(t, h.URL, body, host.A2AEnvelopeHeader, env)
	}
	code, m := as(alice, "message/send", map[string]any{"message": userMsg("my name is Alice")})
	if code != 200 || m["error"] != nil {
		t.Fatalf("alice: %d %v", code, m)
	}
	at := m["result"].(map[string]any)
	actx := at["contextId"].(string)

	code, m = as(bob, "message/send", map[string]any{"message": userMsg("what is my name?", "contextId", actx)})
	if code != 200 || m["error"] != nil {
		t.Fatalf("bob: %d %v", code, m)
	}
	bt := m["result"].(map[string]any)
	if bt["contextId"] == actx || strings.Contains(taskResult(bt), "Alice") {
		t.Fatalf("bob reached alice's context: %v", bt)
	}
	for _, method := range []string{"tasks/get", "tasks/cancel"} {
		code, m = as(bob, method, map[string]any{"id": at["id"]})
		if e, _ := m["error"].(map[string]any); code != 200 || e == nil || e["code"] != float64(-32001) {
			t.Fatalf("bob %s alice's task: %d %v", method, code, m)
		}
		e := a2aErr(t, h.URL, method, map[string]any{"id": at["id"]})
		if e["code"] != float64(-32001) {
			t.Fatalf("anonymous %s alice's task: %v", method, e)
		}
	}
	code, m = as(bob, "message/send", map[string]any{"message": userMsg("yes", "taskId", at["id"])})
	if e, _ := m["error"].(map[string]any); code != 200 || e == nil {
		t.Fatalf("bob answered alice's task: %d %v", code, m)
	}
	// Alice still has her context.
	code, m = as(alice, "message/send", map[string]any{"message": userMsg("what is my name?", "contextId", actx)})
	if code != 200 || !strings.Contains(taskResult(m["result"].(map[string]any)), "Alice") {
		t.Fatalf("alice again: %d %v", code, m)
	}
}

// sseEvents posts a streaming JSON-RPC body and returns the results of
// its events in order.
func sseEvents(t testing.TB, base string, body []byte) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", base+host.A2APath, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	var out []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		if m["error"] != nil {
			t.Fatalf("stream error: %v", m)
		}
		out = append(out, m["result"].(map[string]any))
	}
	return out
}

// TestA2AStream: message/stream sends the task, text deltas as working
// updates, the result artifact and a final completed update.
func TestA2AStream(t *testing.T) {
	h := startHost(t, "offline/demo")
	evs := sseEvents(t, h.URL, a2aBody(t, "message/stream", map[string]any{"message": userMsg("hello there")}))
	if len(evs) < 3 || evs[0]["kind"] != "task" {
		t.Fatalf("events: %v", evs)
	}
	var text strings.Builder
	var artifact string
	for _, ev := range evs[1 : len(evs)-1] {
		switch ev["kind"] {
		case "status-update":
			msg := ev["status"].(map[string]any)["message"].(map[string]any)
			text.WriteString(msg["parts"].([]any)[0].(map[string]any)["text"].(string))
		case "artifact-update":
			artifact = ev["artifact"].(map[string]any)["parts"].([]any)[0].(map[string]any)["text"].(string)
		}
	}
	last := evs[len(evs)-1]
	if last["kind"] != "status-update" || last["final"] != true || last["status"].(map[string]any)["state"] != "completed" {
		t.Fatalf("last event: %v", last)
	}
	if artifact == "" || text.String() != artifact {
		t.Fatalf("streamed %q, artifact %q", text.String(), artifact)
	}
	// Tool calls are announced as working updates.
	evs = sseEvents(t, h.URL, a2aBody(t, "message/stream", map[string]any{"message": userMsg(`use reverse on "abc"`)}))
	var tool bool
	for _, ev := range evs {
		if md, _ := ev["metadata"].(map[string]any); md["agenthost"] == "tool_call" {
			tool = strings.Contains(fmt.Sprint(ev["status"]), "reverse")
		}
	}
	if !tool {
		t.Fatalf("no tool_call update: %v", evs)
	}
	// No push notifications, no extended card.
	if e := a2aErr(t, h.URL, "tasks/pushNotificationConfig/set", map[string]any{"taskId": "x~y", "pushNotificationConfig": map[string]any{"url": "http://127.0.0.1:1/"}}); e["code"] != float64(-32003) {
		t.Fatalf("push config: %v", e)
	}
}

// TestA2AInputRequired: a tool approval and an ask_user question make the
// task input-required, with the request as a data part; the next message
// naming the task answers it and the task completes. A message naming a
// finished task is refused.
func TestA2AInputRequired(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithApproval("danger"))
	t1 := send(t, h.URL, userMsg(`use danger on "launch"`))
	if taskState(t1) != "input-required" {
		t.Fatalf("task: %v", t1)
	}
	if d := statusData(t1); d["kind"] != "approval_needed" || d["tool"] != "danger" {
		t.Fatalf("question: %v", d)
	}
	got := a2aCall(t, h.URL, "tasks/get", map[string]any{"id": t1["id"]})
	if taskState(got) != "input-required" {
		t.Fatalf("tasks/get: %v", got)
	}
	t2 := send(t, h.URL, userMsg("yes", "taskId", t1["id"], "contextId", t1["contextId"]))
	if t2["id"] != t1["id"] || taskState(t2) != "completed" || !strings.Contains(taskResult(t2), "did launch") {
		t.Fatalf("after approval: %v", t2)
	}
	e := a2aErr(t, h.URL, "message/send", map[string]any{"message": userMsg("yes", "taskId", t1["id"])})
	if e["code"] != float64(-32602) {
		t.Fatalf("answering a finished task: %v", e)
	}

	// Denied.
	t3 := send(t, h.URL, userMsg(`use danger on "again"`, "contextId", t1["contextId"]))
	t3 = send(t, h.URL, userMsg("no", "taskId", t3["id"]))
	if taskState(t3) != "completed" || strings.Contains(taskResult(t3), "did again") {
		t.Fatalf("after denial: %v", t3)
	}

	// ask_user.
	t4 := send(t, h.URL, userMsg(`use ask on "favourite colour?"`))
	if taskState(t4) != "input-required" || statusData(t4)["kind"] != "ask_user" {
		t.Fatalf("ask: %v", t4)
	}
	t4 = send(t, h.URL, userMsg("blue", "taskId", t4["id"]))
	if taskState(t4) != "completed" || !strings.Contains(taskResult(t4), "the user said blue") {
		t.Fatalf("after the answer: %v", t4)
	}
}

// TestA2ACancelAndResubscribe: a non-blocking send returns the task while
// it works; tasks/resubscribe follows it to the end; tasks/cancel
// interrupts another, which is then canceled, durably.
func TestA2ACancelAndResubscribe(t *testing.T) {
	h := startHost(t, "offline/slow", host.WithApproval("danger"))
	nb := map[string]any{"blocking": false}
	t1 := a2aCall(t, h.URL, "message/send", map[string]any{"message": userMsg("tell me a story"), "configuration": nb})
	if taskState(t1) != "working" {
		t.Fatalf("non-blocking send: %v", t1)
	}
	evs := sseEvents(t, h.URL, a2aBody(t, "tasks/resubscribe", map[string]any{"id": t1["id"]}))
	last := evs[len(evs)-1]
	if evs[0]["kind"] != "task" || last["final"] != true || last["status"].(map[string]any)["state"] != "completed" {
		t.Fatalf("resubscribe: %v", evs)
	}

	t2 := a2aCall(t, h.URL, "message/send", map[string]any{"message": userMsg("tell me another story", "contextId", t1["contextId"]), "configuration": nb})
	// One turn per session at a time.
	if e := a2aErr(t, h.URL, "message/send", map[string]any{"message": userMsg("and a third", "contextId", t1["contextId"])}); e["code"] != float64(-32600) ||
		!strings.Contains(fmt.Sprint(e["data"]), "task running") {
		t.Fatalf("a busy context: %v", e)
	}
	c := a2aCall(t, h.URL, "tasks/cancel", map[string]any{"id": t2["id"]})
	if taskState(c) != "canceled" {
		t.Fatalf("cancel: %v", c)
	}
	if got := a2aCall(t, h.URL, "tasks/get", map[string]any{"id": t2["id"]}); taskState(got) != "canceled" {
		t.Fatalf("after cancel: %v", got)
	}
	e := a2aErr(t, h.URL, "tasks/cancel", map[string]any{"id": t1["id"]})
	if e["code"] != float64(-32002) {
		t.Fatalf("cancel a completed task: %v", e)
	}
	// Canceling a task that waits for approval ends the wait.
	t3 := send(t, h.URL, userMsg(`use danger on "x"`))
	if taskState(t3) != "input-required" {
		t.Fatalf("approval: %v", t3)
	}
	if c := a2aCall(t, h.URL, "tasks/cancel", map[string]any{"id": t3["id"]}); taskState(c) != "canceled" {
		t.Fatalf("cancel while waiting: %v", c)
	}
}

// TestA2AParts: file parts are attachments under the upload limits, data
// parts join the prompt, files by uri are refused.
func TestA2AParts(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithMaxFilesPerRequest(1))
	file := map[string]any{"kind": "file", "file": map[string]any{"name": "notes.txt", "mimeType": "text/plain", "bytes": "aGVsbG8="}}
	msg := userMsg("read this")
	msg["parts"] = append(msg["parts"].([]any), file, map[string]any{"kind": "data", "data": map[string]any{"city": "Oslo"}})
	task := send(t, h.URL, msg)
	hist := task["history"].([]any)
	prompt := hist[0].(map[string]any)["parts"].([]any)[0].(map[string]any)["text"].(string)
	if taskState(task) != "completed" || !strings.Contains(prompt, `"city": "Oslo"`) {
		t.Fatalf("task: %v", task)
	}
	two := userMsg("two files")
	two["parts"] = append(two["parts"].([]any), file, file)
	if e := a2aErr(t, h.URL, "message/send", map[string]any{"message": two}); e["code"] != float64(-32602) ||
		!strings.Contains(fmt.Sprint(e["data"]), "too many attachments") {
		t.Fatalf("two files: %v", e)
	}
	uri := userMsg("by uri")
	uri["parts"] = append(uri["parts"].([]any), map[string]any{"kind": "file", "file": map[string]any{"uri": "http://127.0.0.1:1/x"}})
	if e := a2aErr(t, h.URL, "message/send", map[string]any{"message": uri}); e["code"] != float64(-32005) {
		t.Fatalf("file by uri: %v", e)
	}
}

// TestA2AInfoAndDocs: /info names the A2A endpoints, and /openapi.json —
// which the /docs page renders as its reference — describes both.
func TestA2AInfoAndDocs(t *testing.T) {
	h := startHost(t, "offline/demo")
	code, info, _ := do(t, "GET", h.URL+"/info", nil)
	wantStatus(t, code, 200, info)
	a, _ := info["a2a"].(map[string]any)
	if a["agent_card"] != host.A2AAgentCardPath || a["url"] != host.A2APath {
		t.Fatalf("info: %v", info)
	}
	code, spec, _ := do(t, "GET", h.URL+"/openapi.json", nil)
	wantStatus(t, code, 200, spec)
	paths := spec["paths"].(map[string]any)
	if paths[host.A2APath].(map[string]any)["post"] == nil || paths[host.A2AAgentCardPath].(map[string]any)["get"] == nil {
		t.Fatalf("openapi paths: %v", paths)
	}
	// Other methods at /a2a are refused as JSON-RPC errors.
	code, m, _ := do(t, "GET", h.URL+host.A2APath, nil)
	if code != 405 || m["jsonrpc"] != "2.0" {
		t.Fatalf("GET /a2a: %d %v", code, m)
	}
}
