package coderuntime

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/agenthost/agenthost/internal/ids"
)

// TestNewSessionID: the platform may name the session a message starts
// (newSessionId), so that the message's files are saved into that
// session's folder (POST /control/files?newSessionId=) before it runs.
// The id must have the runtime's shape and be unused, and sessionId and
// newSessionId are not named together.
func TestNewSessionID(t *testing.T) {
	t.Parallel()
	rg := newRig(t, nil)
	fresh := ids.Hex("ses_")
	code, body := upload(t, rg, "file?newSessionId="+fresh, "notes.txt", []byte("hello"))
	want := filepath.Join(rg.rt.Workspace(), SessionUploads, fresh, "notes.txt")
	if code != 200 || body["path"] != want {
		t.Fatalf("upload for a new session: %d %v, want %s", code, body, want)
	}
	code, body = rg.raw(t, "POST", "/control/messages", `{"message":"hello","newSessionId":"`+fresh+`"}`)
	if code != 200 || body["sessionId"] != fresh {
		t.Fatalf("send to a new session: %d %v", code, body)
	}
	rg.waitIdle(t)
	if h := rg.history(t, fresh); len(h.Messages) < 2 {
		t.Fatalf("the new session's history: %+v", h)
	}
	if b, err := os.ReadFile(want); err != nil || string(b) != "hello" {
		t.Fatalf("the file: %q %v", b, err)
	}
	for _, c := range []struct {
		name, query, body string
		want              int
	}{
		{"upload, taken id", "newSessionId=" + fresh, "", 409},
		{"upload, bad shape", "newSessionId=../x", "", 400},
		{"upload, both", "newSessionId=" + ids.Hex("ses_") + "&sessionId=" + fresh, "", 400},
		{"send, taken id", "", `{"message":"hi","newSessionId":"` + fresh + `"}`, 409},
		{"send, bad shape", "", `{"message":"hi","newSessionId":"ses_x/../y"}`, 400},
		{"send, both", "", `{"message":"hi","sessionId":"` + fresh + `","newSessionId":"` + ids.Hex("ses_") + `"}`, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			var code int
			var body map[string]any
			if c.body == "" {
				code, body = upload(t, rg, "file?"+c.query, "x.txt", []byte("x"))
			} else {
				code, body = rg.raw(t, "POST", "/control/messages", c.body)
			}
			if code != c.want || body["error"] == nil {
				t.Fatalf("%d %v, want %d", code, body, c.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(rg.rt.Workspace(), "x")); err == nil {
		t.Fatal("a bad id made a folder")
	}
}
