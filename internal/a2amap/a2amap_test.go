package a2amap_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/agenthost/agenthost/internal/a2amap"
)

// TestParse: text parts make the prompt, data parts join it as JSON, file
// parts with bytes are files, and what neither front end takes is refused
// with the A2A error a client can act on.
func TestParse(t *testing.T) {
	file := func(name, mt, b64 string) a2a.FilePart {
		return a2a.FilePart{File: a2a.FileBytes{FileMeta: a2a.FileMeta{Name: name, MimeType: mt}, Bytes: b64}}
	}
	for _, tc := range []struct {
		name   string
		parts  a2a.ContentParts
		prompt string
		files  int
		err    error
	}{
		{"text", a2a.ContentParts{a2a.TextPart{Text: "hi"}, a2a.TextPart{Text: "there"}}, "hi\n\nthere", 0, nil},
		{"data", a2a.ContentParts{a2a.TextPart{Text: "hi"}, a2a.DataPart{Data: map[string]any{"a": 1}}}, "hi\n\n```json\n{\n  \"a\": 1\n}\n```", 0, nil},
		{"file", a2a.ContentParts{a2a.TextPart{Text: "hi"}, file("n.txt", "text/plain", "aGVsbG8=")}, "hi", 1, nil},
		{"no text", a2a.ContentParts{file("n.txt", "text/plain", "aGVsbG8=")}, "", 0, a2a.ErrInvalidParams},
		{"blank text", a2a.ContentParts{a2a.TextPart{Text: "  "}}, "", 0, a2a.ErrInvalidParams},
		{"bad base64", a2a.ContentParts{a2a.TextPart{Text: "hi"}, file("n.txt", "", "!!")}, "", 0, a2a.ErrInvalidParams},
		{"uri", a2a.ContentParts{a2a.TextPart{Text: "hi"}, a2a.FilePart{File: a2a.FileURI{URI: "http://127.0.0.1/x"}}}, "", 0, a2a.ErrUnsupportedContentType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := a2amap.Parse(tc.parts)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && (in.Prompt != tc.prompt || len(in.Files) != tc.files) {
				t.Fatalf("got %q and %d files", in.Prompt, len(in.Files))
			}
			if tc.files == 1 && (string(in.Files[0].Data) != "hello" || in.Files[0].DataURL() != "data:text/plain;base64,aGVsbG8=") {
				t.Fatalf("file: %+v", in.Files[0])
			}
		})
	}
}

// TestTaskID: a task id splits back into its session and message, and
// nothing else splits.
func TestTaskID(t *testing.T) {
	if s, m, ok := a2amap.SplitTaskID(a2amap.TaskID("ses_1", "msg_2")); !ok || s != "ses_1" || m != "msg_2" {
		t.Fatalf("round trip: %q %q %v", s, m, ok)
	}
	for _, bad := range []a2a.TaskID{"", "x", "~y", "x~", "~"} {
		if _, _, ok := a2amap.SplitTaskID(bad); ok {
			t.Errorf("%q split", bad)
		}
	}
}

// TestFileNote: the note quotes the name and puts the path in backquotes.
func TestFileNote(t *testing.T) {
	n := a2amap.FileNote("a \"b\".txt", 5, "text/plain", "uploads/sessions/s/a.txt")
	if !strings.Contains(n, `"a \"b\".txt" (5 bytes, text/plain)`) || !strings.Contains(n, "`uploads/sessions/s/a.txt`") {
		t.Fatal(n)
	}
}

// FuzzParse: any message a client can send parses or is refused with an
// A2A error, never a panic, and a parsed one has a prompt.
func FuzzParse(f *testing.F) {
	f.Add(`{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"text","text":"hi"},{"kind":"file","file":{"bytes":"aGk=","name":"a.txt"}}]}`)
	f.Add(`{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"data","data":{"x":[1,2]}},{"kind":"file","file":{"uri":"file:///etc/passwd"}}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		var m a2a.Message
		if json.Unmarshal([]byte(s), &m) != nil {
			return
		}
		in, err := a2amap.Parse(m.Parts)
		if err == nil && strings.TrimSpace(in.Prompt) == "" {
			t.Fatalf("parsed without a prompt: %s", s)
		}
		if err != nil && !errors.Is(err, a2a.ErrInvalidParams) && !errors.Is(err, a2a.ErrUnsupportedContentType) {
			t.Fatalf("error not an A2A one: %v", err)
		}
	})
}
