package coding

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/egress"
)

const testPage = `<!DOCTYPE html>
<html><head><title>Test &amp; Page</title>
<style>body { color: red }</style>
<script>var x = "<p>not text</p>";</script></head>
<body>
<!-- a comment <p>hidden</p> -->
<h1>Main   heading</h1>
<p>First paragraph with <a href="/docs">a link</a> and <b>bold</b> text.</p>
<ul><li>one</li><li>two &lt;3</li></ul>
<pre>code
  indented</pre>
<SCRIPT type="text/javascript">alert("x")</SCRIPT>
<table><tr><td>a</td><td>b</td></tr></table>
<p data-x="a > b">after attribute</p>
</body></html>`

func TestHTMLToText(t *testing.T) {
	got := htmlToText(testPage)
	for _, want := range []string{"Test & Page", "# Main heading", "First paragraph with [a link](/docs) and bold text.",
		"- one\n- two <3", "code\n  indented", "a b", "after attribute"} {
		if !strings.Contains(got, want) {
			t.Errorf("text lacks %q:\n%s", want, got)
		}
	}
	for _, bad := range []string{"color: red", "not text", "hidden", "alert", "<", "data-x"} {
		if strings.Contains(strings.ReplaceAll(got, "<3", ""), bad) {
			t.Errorf("text has %q:\n%s", bad, got)
		}
	}
	// Malformed input degrades to text and never hangs.
	for _, s := range []string{"<", "a < b", "<p", "<script>never closed", "<!-- open", "<a href='x'>unclosed"} {
		_ = htmlToText(s)
	}
}

func TestWebfetch(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, testPage)
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "just text <b>kept</b>")
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, strings.Repeat("0123456789\n", 2000))
	})
	mux.HandleFunc("/image", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write([]byte("\x89PNG\r\n\x1a\n\x00\x00"))
	})
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such page", http.StatusNotFound)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/plain", http.StatusFound)
	})
	mux.HandleFunc("/to-file", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	mux.HandleFunc("/ua", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.UserAgent()) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tools, err := Tools(t.TempDir(), Options{FetchLimit: 10000, Egress: &egress.Dialer{Policy: egress.MustParse("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, tl := range tools {
		byName[tl.Spec().Name] = i
	}
	fetchTool := tools[byName["webfetch"]]
	tests := []struct {
		name    string
		args    string
		want    []string
		notWant []string
		err     string
	}{
		{"html", `{"url":"` + srv.URL + `/page"}`, []string{"Content-Type: text/html", "# Main heading", "[a link](/docs)"}, []string{"<p>", "color"}, ""},
		{"raw html", `{"url":"` + srv.URL + `/page","format":"raw"}`, []string{"<h1>Main   heading</h1>"}, nil, ""},
		{"plain", `{"url":"` + srv.URL + `/plain"}`, []string{"just text <b>kept</b>"}, nil, ""},
		{"json", `{"url":"` + srv.URL + `/json"}`, []string{`{"ok":true}`}, nil, ""},
		{"size cap", `{"url":"` + srv.URL + `/big"}`, []string{"download stopped at 10000 bytes"}, nil, ""},
		{"binary", `{"url":"` + srv.URL + `/image"}`, []string{"image/png content", "not shown"}, []string{"PNG"}, ""},
		{"redirect", `{"url":"` + srv.URL + `/redirect"}`, []string{"URL: " + srv.URL + "/plain", "just text"}, nil, ""},
		{"user agent", `{"url":"` + srv.URL + `/ua"}`, []string{"agenthost-webfetch"}, nil, ""},
		{"404", `{"url":"` + srv.URL + `/missing"}`, nil, nil, "404 Not Found: no such page"},
		{"timeout", `{"url":"` + srv.URL + `/slow","timeout":1}`, nil, nil, "timed out"},
		{"redirect to file", `{"url":"` + srv.URL + `/to-file"}`, nil, nil, "only http and https"},
		{"file scheme", `{"url":"file:///etc/passwd"}`, nil, nil, "only http and https"},
		{"ftp scheme", `{"url":"ftp://example.com/x"}`, nil, nil, "only http and https"},
		{"no host", `{"url":"http:///x"}`, nil, nil, "no host"},
		{"bad format", `{"url":"` + srv.URL + `/plain","format":"pdf"}`, nil, nil, "format must be"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := fetchTool.Call(context.Background(), []byte(tc.args))
			checkResult(t, out, err, tc.want, tc.notWant, tc.err)
		})
	}
}
