package host_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/host"
)

// onePixelPNG is a 1×1 PNG.
const onePixelPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

func dataURL(mt string, b []byte) string {
	return "data:" + mt + ";base64," + base64.StdEncoding.EncodeToString(b)
}

func TestUploads(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithMaxFileSize(0.01), host.WithMaxFilesPerRequest(3))
	code, m := post(t, h, map[string]any{
		"prompt": "what is in these?",
		"images": []string{"data:image/png;base64," + onePixelPNG},
		"files": []map[string]any{
			{"name": "notes.txt", "data": dataURL("text/plain", []byte("hello file"))},
			{"name": "../../../etc/passwd", "data": base64.StdEncoding.EncodeToString([]byte("root"))},
		},
	})
	wantStatus(t, code, 200, m)
	items := m["chat_items"].([]any)
	user := items[0].(map[string]any)
	if user["images"] != 1.0 {
		t.Fatalf("image not attached: %v", user)
	}
	// One directory per caller (here an anonymous caller's, by IP).
	owners, err := os.ReadDir(filepath.Join(h.dir, ".co", "uploads"))
	if err != nil || len(owners) != 1 || !owners[0].IsDir() {
		t.Fatalf("uploads: %v %v", owners, err)
	}
	uploads := filepath.Join(h.dir, ".co", "uploads", owners[0].Name())
	entries, err := os.ReadDir(uploads)
	if err != nil || len(entries) != 2 {
		t.Fatalf("uploads: %v %v", entries, err)
	}
	var sawNotes, sawPasswd bool
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(uploads, e.Name()))
		switch {
		case strings.HasSuffix(e.Name(), "_notes.txt") && string(b) == "hello file":
			sawNotes = true
		case strings.HasSuffix(e.Name(), "_passwd") && string(b) == "root":
			sawPasswd = true
		}
		if strings.Contains(e.Name(), "..") || strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("unsafe upload name %q", e.Name())
		}
	}
	if !sawNotes || !sawPasswd {
		t.Fatalf("saved files: %v", entries)
	}
	// The agent is told where the files are.
	content := user["content"].(string)
	if !strings.Contains(content, uploads) || !strings.Contains(content, `"notes.txt"`) {
		t.Fatalf("agent not told about the files: %q", content)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "etc")); err == nil {
		t.Fatal("a client path was used")
	}

	big := make([]byte, 20000)
	code, m = post(t, h, map[string]any{"prompt": "x", "files": []map[string]any{{"name": "big.bin", "data": dataURL("application/octet-stream", big)}}})
	wantError(t, code, 413, m, `"big.bin"`, "19.5 KB", "0.01 MB")
	code, m = post(t, h, map[string]any{"prompt": "x", "images": []string{dataURL("image/png", big)}})
	wantError(t, code, 413, m, "image 1", "0.01 MB")
	small := dataURL("text/plain", []byte("a"))
	four := []map[string]any{{"name": "a", "data": small}, {"name": "b", "data": small}, {"name": "c", "data": small}, {"name": "d", "data": small}}
	code, m = post(t, h, map[string]any{"prompt": "x", "files": four})
	wantError(t, code, 400, m, "too many", "4", "limit is 3")
	code, m = post(t, h, map[string]any{"prompt": "x", "images": []string{"http://example.com/x.png"}})
	wantError(t, code, 400, m, "images[0]")
	code, m = post(t, h, map[string]any{"prompt": "x", "files": []map[string]any{{"name": "n", "data": "data:text/plain,notbase64"}}})
	wantError(t, code, 400, m, `"n"`, "base64")
	code, m = post(t, h, map[string]any{"prompt": "x", "files": []map[string]any{{"name": "n"}}})
	wantError(t, code, 400, m, `"n"`, "no data")
}

func TestBodyLimit(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithMaxFileSize(0.01), host.WithMaxFilesPerRequest(1))
	huge := `{"prompt":"` + strings.Repeat("a", 6<<20) + `"}`
	code, m := post(t, h, huge)
	wantError(t, code, 413, m, "larger than")
}

func TestSSE(t *testing.T) {
	h := startHost(t, "offline/demo")
	req, _ := http.NewRequest("POST", h.URL+"/input", strings.NewReader(`{"prompt":"use add on 2 and 3"}`))
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("SSE response: %d %v", resp.StatusCode, resp.Header)
	}
	var evs []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	lastID := ""
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			lastID = id
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var m map[string]any
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				t.Fatalf("data line %q: %v", data, err)
			}
			if m["id"] != lastID {
				t.Fatalf("id line %q, event id %v", lastID, m["id"])
			}
			evs = append(evs, m)
		}
	}
	got := strings.Join(types(evs), ",")
	if !strings.Contains(got, "tool_call,tool_result") || !strings.HasSuffix(got, "OUTPUT") {
		t.Fatalf("SSE events: %s", got)
	}
	if out := evs[len(evs)-1]; !strings.Contains(out["result"].(string), "5") {
		t.Fatalf("OUTPUT: %v", out)
	}
	// Validation errors come before the stream, as JSON.
	req, _ = http.NewRequest("POST", h.URL+"/input", strings.NewReader(`{"prompt":""}`))
	req.Header.Set("Accept", "text/event-stream")
	resp2, _ := http.DefaultClient.Do(req)
	resp2.Body.Close()
	if resp2.StatusCode != 400 || !strings.HasPrefix(resp2.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("SSE validation error: %d %s", resp2.StatusCode, resp2.Header.Get("Content-Type"))
	}
}
