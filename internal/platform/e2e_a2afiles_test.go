package platform_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform"
)

// a2aFile is an A2A file part with bytes.
func a2aFile(name, mimeType string, content []byte) map[string]any {
	f := map[string]any{"bytes": base64.StdEncoding.EncodeToString(content)}
	if name != "" {
		f["name"] = name
	}
	if mimeType != "" {
		f["mimeType"] = mimeType
	}
	return map[string]any{"kind": "file", "file": f}
}

// a2aMsg is a user message of a text part and more parts.
func a2aMsg(text string, parts ...map[string]any) map[string]any {
	m := a2aUserMsg(text)
	for _, p := range parts {
		m["parts"] = append(m["parts"].([]any), p)
	}
	return m
}

// a2aRPCError sends one JSON-RPC call that must fail and returns its
// error object.
func (a *api) a2aRPCError(id, method string, params any) map[string]any {
	a.t.Helper()
	m := a.Do(a.t, "POST", "/api/v1/agents/"+id+"/a2a", map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).Want(a.t, 200)
	e, _ := m["error"].(map[string]any)
	if e == nil {
		a.t.Fatalf("%s succeeded: %v", method, m)
	}
	return e
}

// TestPlatformA2AFiles: A2A file parts reach a platform agent as uploads
// of the task's session (the real coding runtime, process driver). A file
// part with bytes is saved in the session's own upload folder, a new
// context's as well as an existing one's; the prompt names the saved
// path, and the agent reads the file there with its read tool; a data
// part joins the prompt as JSON. A file over the per-file limit, a file
// type the upload route refuses, files over the agent's upload total, a
// body larger than that total allows and a file by uri are refused with
// JSON-RPC errors that say why, and nothing of them is saved nor any turn
// started; a name with a path ("../../escape.txt") is saved under its
// base name inside the session's folder, never outside it.
func TestPlatformA2AFiles(t *testing.T) {
	const limit = 64 << 10
	r := newCodingRig(t, false, func(c *platform.Config) { c.MaxUploadFile, c.MaxUploadTotal = limit, 4*limit })
	c := r.client("acme")
	id, _ := c.create(map[string]any{"name": "reader", "model": "offline/demo"})
	c.waitIdle(id)
	ws := filepath.Join(r.opts.DataDir, "runtimes", id, "workspace")
	canary := "a2a-file-canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)

	// A new context: the file goes into the new session's folder before
	// its first turn runs. "lines 1 to 1" fill the read tool's optional
	// offset and limit, whichever the offline model fills first.
	t1 := c.a2aRPC(id, "message/send", map[string]any{"message": a2aMsg("use read on the attached file, lines 1 to 1",
		a2aFile("notes.txt", "text/plain", []byte(canary+"\n")))})
	if a2aState(t1) == "input-required" {
		t1 = c.a2aRPC(id, "message/send", map[string]any{"message": a2aUserMsg("yes", "taskId", t1["id"].(string))})
	}
	sid, _ := t1["contextId"].(string)
	if a2aState(t1) != "completed" || sid == "" {
		t.Fatalf("send with a file: %v", t1)
	}
	saved := "uploads/sessions/" + sid + "/notes.txt"
	if b, err := os.ReadFile(filepath.Join(ws, filepath.FromSlash(saved))); err != nil || string(b) != canary+"\n" {
		t.Fatalf("the file in the session's folder: %q %v", b, err)
	}
	h := c.history(id, sid)
	if prompt := text(h[0]); !strings.Contains(prompt, "`"+saved+"`") {
		t.Fatalf("the prompt does not name the saved file: %q", prompt)
	}
	if tool := lastTool(h); tool["status"] != "completed" || !strings.Contains(fmt.Sprint(tool["output"]), canary) {
		t.Fatalf("the agent did not read the file: %v", tool)
	}

	// An existing context: the files go into that session's folder, an
	// image like any file; a file without a name is named after its type;
	// a data part joins the prompt as JSON.
	t2 := c.a2aRPC(id, "message/send", map[string]any{"message": withContext(a2aMsg("here is more", a2aFile("", "application/json", []byte(`{"a":1}`)),
		a2aFile("pic.png", "image/png", []byte("\x89PNG\r\n\x1a\n")), map[string]any{"kind": "data", "data": map[string]any{"city": "Oslo"}}), sid)})
	if a2aState(t2) != "completed" || t2["contextId"] != sid {
		t.Fatalf("send in a context: %v", t2)
	}
	if prompt := text(c.history(id, sid)[len(h)]); !strings.Contains(prompt, `"city": "Oslo"`) || !strings.Contains(prompt, "`uploads/sessions/"+sid+"/attachment.json`") ||
		!strings.Contains(prompt, "`uploads/sessions/"+sid+"/pic.png`") {
		t.Fatalf("the second prompt: %q", prompt)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "uploads", "sessions", sid, "attachment.json")); err != nil || string(b) != `{"a":1}` {
		t.Fatalf("the unnamed file: %q %v", b, err)
	}

	// A path in the name is dropped: the file lands in the folder.
	t3 := c.a2aRPC(id, "message/send", map[string]any{"message": withContext(a2aMsg("escape", a2aFile("../../escape.txt", "text/plain", []byte("x"))), sid)})
	if a2aState(t3) != "completed" {
		t.Fatalf("send ../../escape.txt: %v", t3)
	}
	if _, err := os.Stat(filepath.Join(ws, "uploads", "sessions", sid, "escape.txt")); err != nil {
		t.Fatalf("../../escape.txt is not in the session's folder: %v", err)
	}
	for _, out := range []string{filepath.Join(ws, "uploads", "escape.txt"), filepath.Join(ws, "escape.txt"), filepath.Join(ws, "..", "escape.txt")} {
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("../../escape.txt escaped the session's folder to %s", out)
		}
	}

	// Refused: nothing saved, no turn.
	before := len(c.history(id, sid))
	for _, tc := range []struct {
		name string
		part map[string]any
		code float64
		why  string
	}{
		{"over the limit", a2aFile("big.txt", "text/plain", make([]byte, limit+1)), -32602, "exceeds 65536 bytes (the limit per file)"},
		{"a path and no extension", a2aFile("../../x", "text/plain", []byte("x")), -32602, "file type (none) is not allowed"},
		{"a type not allowed", a2aFile("run.exe", "", []byte("x")), -32602, "file type .exe is not allowed"},
		{"by uri", map[string]any{"kind": "file", "file": map[string]any{"uri": "http://127.0.0.1:1/secret.txt", "name": "secret.txt"}}, -32005, "does not fetch files by uri"},
		{"not base64", map[string]any{"kind": "file", "file": map[string]any{"bytes": "not base64!", "name": "n.txt"}}, -32602, "base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := c.a2aRPCError(id, "message/send", map[string]any{"message": withContext(a2aMsg("refuse this", tc.part), sid)})
			if e["code"] != tc.code || !strings.Contains(fmt.Sprint(e["message"], e["data"]), tc.why) {
				t.Fatalf("error %v, want code %v saying %q", e, tc.code, tc.why)
			}
		})
	}
	// Files within the per-file limit but over the agent's total.
	var five []map[string]any
	for i := range 5 {
		five = append(five, a2aFile(fmt.Sprintf("part%d.txt", i), "text/plain", make([]byte, limit-100)))
	}
	e := c.a2aRPCError(id, "message/send", map[string]any{"message": withContext(a2aMsg("too much", five...), sid)})
	if e["code"] != float64(-32602) || !strings.Contains(fmt.Sprint(e["data"]), "agent total exceeds") {
		t.Fatalf("over the agent's total: %v", e)
	}
	// A body past what the total allows is refused before it is parsed.
	c.Do(t, "POST", "/api/v1/agents/"+id+"/a2a", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "message/send",
		"params": map[string]any{"message": a2aUserMsg(strings.Repeat("x", 2<<20))}}).WantError(t, 413, "files in A2A parts are limited as uploads are")
	entries, _ := os.ReadDir(filepath.Join(ws, "uploads", "sessions", sid))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := "attachment.json escape.txt notes.txt pic.png"; strings.Join(names, " ") != want {
		t.Fatalf("the session's folder holds %v, want %s", names, want)
	}
	if _, err := os.Stat(filepath.Join(ws, "x")); err == nil {
		t.Fatal("../../x was saved in the workspace")
	}
	if after := len(c.history(id, sid)); after != before {
		t.Fatalf("a refused message ran a turn: %d messages, then %d", before, after)
	}

	// A message answering a task carries no files.
	e = c.a2aRPCError(id, "message/send", map[string]any{"message": withTask(a2aMsg("yes", a2aFile("a.txt", "", []byte("x"))), t3["id"].(string))})
	if e["code"] != float64(-32602) || !strings.Contains(fmt.Sprint(e["data"]), "not files") {
		t.Fatalf("a file in an answer: %v", e)
	}
}

func withContext(m map[string]any, sid string) map[string]any {
	m["contextId"] = sid
	return m
}

func withTask(m map[string]any, task string) map[string]any {
	m["taskId"] = task
	return m
}
