package platform_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/testutil"
)

// TestAgentAPIErrors checks every documented error status of the routes
// that talk to a running agent: 401, 404 (unknown and foreign ids), 400
// (not running, bad JSON, missing fields, bad replies, uploads: missing
// file, disallowed type, over 50 MB, agent over 100 MB), 502 (runtime not
// answering).
func TestAgentAPIErrors(t *testing.T) {
	r := newCodingRig(t, false, func(c *platform.Config) {
		c.RuntimeTimeout = 2 * time.Second
		c.MaxUploadTotal = 3 << 20 // the 100 MB rule, scaled down
	})
	c := r.client("acme")
	foreign := r.client("globex")
	anon := r.env.Client("")
	id, _ := c.create(map[string]any{"name": "a"})
	stopped, _ := c.create(map[string]any{"name": "b"})
	c.post("/api/v1/agents/"+stopped+"/stop", nil)

	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/messages", nil},
		{"GET", "/messages?sessionId=ses_x", nil},
		{"POST", "/messages", map[string]any{"message": "hi"}},
		{"GET", "/usage", nil},
		{"POST", "/abort", nil},
		{"GET", "/permissions", nil},
		{"POST", "/permissions/perm_1/reply", map[string]any{"reply": "once"}},
		{"GET", "/questions", nil},
		{"POST", "/questions/q_1/reply", map[string]any{"answers": [][]string{{"A"}}}},
		{"GET", "/events", nil},
		{"POST", "/files", nil},
	}
	for _, rt := range routes {
		anon.Do(t, rt.method, "/api/v1/agents/"+id+rt.path, rt.body).WantError(t, 401, "")
		c.Do(t, rt.method, "/api/v1/agents/nope"+rt.path, rt.body).WantError(t, 404, "agent not found")
		foreign.Do(t, rt.method, "/api/v1/agents/"+id+rt.path, rt.body).WantError(t, 404, "agent not found")
		c.Do(t, rt.method, "/api/v1/agents/"+stopped+rt.path, rt.body).WantError(t, 400, "not running")
	}

	base := "/api/v1/agents/" + id
	for _, tc := range []struct {
		path string
		body any
		want string
	}{
		{"/messages", "{not json", "not valid JSON"},
		{"/messages", `{"sessionId": "x"}`, "message is required"},
		{"/messages", `{"message": "  "}`, "message is required"},
		{"/messages", `{"message": 7}`, `field "message" must be a string`},
		{"/messages", `{"message": "hi", "color": 1}`, `unknown field "color"`},
		{"/messages", `[]`, "JSON object"},
		{"/abort", `{"sessionId": 3}`, `field "sessionId"`},
		{"/permissions/perm_1/reply", `{"reply": "sometimes"}`, `reply must be`},
		{"/permissions/perm_1/reply", `{}`, `reply must be`},
		{"/permissions/perm_1/reply", `nope`, "not valid JSON"},
		{"/questions/q_1/reply", `{}`, "answers is required"},
		{"/questions/q_1/reply", `{"answers": [1]}`, `field "answers"`},
	} {
		c.Do(t, "POST", base+tc.path, tc.body).WantError(t, 400, tc.want)
	}
	c.Do(t, "POST", base+"/messages", map[string]any{"message": "hi", "sessionId": "ses_missing"}).WantError(t, 404, "")
	c.Do(t, "GET", base+"/messages?sessionId=ses_missing", nil).WantError(t, 404, "")
	c.Do(t, "POST", base+"/abort", map[string]any{"sessionId": "ses_missing"}).WantError(t, 404, "")
	c.Do(t, "POST", base+"/permissions/perm_missing/reply", map[string]any{"reply": "reject"}).WantError(t, 404, "")
	c.Do(t, "POST", base+"/questions/q_missing/reply", map[string]any{"answers": [][]string{}}).WantError(t, 404, "")
	if got := c.post(base+"/abort", nil); got["agentId"] != id {
		t.Fatalf("abort all = %v", got)
	}

	// Uploads.
	hdr := map[string]string{"Authorization": "Bearer " + c.Token}
	c.Do(t, "POST", base+"/files", "plain").WantError(t, 400, "multipart/form-data")
	upload(t, r.env.URL, base+"/files", "run.exe", 10, hdr).WantError(t, 400, "file type .exe is not allowed")
	upload(t, r.env.URL, base+"/files", "Makefile", 10, hdr).WantError(t, 400, "not allowed")
	upload(t, r.env.URL, base+"/files", "big.csv", 50<<20+1, hdr).WantError(t, 400, "file exceeds 50 MB")
	up := upload(t, r.env.URL, base+"/files", "data.CSV", 2<<20, hdr).Want(t, 200)
	if up["name"] != "data.CSV" || up["size"].(float64) != 2<<20 || !strings.HasSuffix(up["path"].(string), "/uploads/data.CSV") {
		t.Fatalf("upload = %v", up)
	}
	upload(t, r.env.URL, base+"/files", "more.json", 2<<20, hdr).WantError(t, 400, "agent total exceeds 3 MB")
	upload(t, r.env.URL, base+"/files", "small.json", 1<<20, hdr).Want(t, 200) // exactly the limit
	// A file the runtime refuses gives its quota back: nothing fits now,
	// not even a byte.
	upload(t, r.env.URL, base+"/files", "one.txt", 1, hdr).WantError(t, 400, "agent total exceeds")

	// 502: a runtime that does not answer (stopped with SIGSTOP).
	pid := r.pid(id)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	// kill returns before the stop is complete: the thread that takes the
	// signal stops the others only once it runs, and on a busy machine
	// another thread may answer a request until then (CI caught a 200).
	testutil.Eventually(t, 10*time.Second, "the runtime's threads to stop", func() bool { return allStopped(t, pid) })
	c.Do(t, "GET", base+"/messages", nil).WantError(t, http.StatusBadGateway, "not responding")
	c.Do(t, "POST", base+"/messages", map[string]any{"message": "hi"}).WantError(t, 502, "not responding")
	if st := c.get(base); st["status"] != "RUNNING" || st["busy"] != false {
		t.Fatalf("GET of an agent whose runtime hangs = %v", st)
	}
	syscall.Kill(pid, syscall.SIGCONT)
	c.get(base + "/messages")
	if _, err := os.FindProcess(pid); err != nil {
		t.Fatal(err)
	}
}

// failingTransport fails the calls to one control path of every runtime
// the way a broken connection does (the runtime died mid-call, a reset),
// and passes the others on.
type failingTransport struct {
	path string
	base http.RoundTripper
}

func (f failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == f.path {
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return f.base.RoundTrip(r)
}

// TestRuntimeConnectionError: a call to a runtime that fails on the
// connection, while the client still waits, is the runtime's failure (502
// "not responding"), not a cancelled request (503), even though the call
// carries a timeout of its own. It was 503 "request cancelled": the call's
// context was cancelled before the error was classified, so every
// connection error looked like a client that had left.
func TestRuntimeConnectionError(t *testing.T) {
	r := newCodingRig(t, false, func(c *platform.Config) {
		c.RuntimeTransport = failingTransport{path: "/control/usage", base: http.DefaultTransport}
	})
	c := r.client("acme")
	id, _ := c.create(map[string]any{"name": "a"})
	c.Do(t, "GET", "/api/v1/agents/"+id+"/usage", nil).WantError(t, http.StatusBadGateway, "not responding")
	c.get("/api/v1/agents/" + id + "/messages") // the other calls still go through
}

// allStopped reports whether every thread of pid is stopped (state T or t
// in /proc/pid/task/*/stat).
func allStopped(t *testing.T, pid int) bool {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false // a thread that exited: look again
		}
		// The state follows the command name, which may hold ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}
