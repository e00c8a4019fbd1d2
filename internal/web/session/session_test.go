package session_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/web/session"
)

// The page is one document whose inline script and style are exactly the
// ones its Content-Security-Policy pins by hash; it may be framed.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(session.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/a/ag_1/session/ses_1?cap=x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors *") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	if resp.Header.Get("X-Frame-Options") != "" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("framing/referrer headers: %v", resp.Header)
	}
	for tag, re := range map[string]*regexp.Regexp{
		"script": regexp.MustCompile(`(?s)<script>(.*?)</script>`),
		"style":  regexp.MustCompile(`(?s)<style>(.*?)</style>`),
	} {
		m := re.FindAllStringSubmatch(page, -1)
		if len(m) != 1 {
			t.Fatalf("%d inline %s elements", len(m), tag)
		}
		sum := sha256.Sum256([]byte(m[0][1]))
		if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, h) {
			t.Errorf("the %s's hash %s is not in the CSP", tag, h)
		}
	}
	if strings.Contains(page, "<!--scripts-->") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("the page is not self-contained")
	}
	if r, _ := http.Post(srv.URL+"/x", "text/plain", nil); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", r.StatusCode)
	}
}

// FuzzWantsHTML: any Accept header parses without panicking, and only one
// that names an HTML type gets the HTML error page.
func FuzzWantsHTML(f *testing.F) {
	for _, s := range []string{"", "*/*", "text/html", "text/html;q=0", "application/json, text/html;q=0.5", "text/html;q=x", "application/xhtml+xml;q=0.9,*/*;q=0.8", ";;,,q="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", accept)
		if session.WantsHTML(r) && !strings.Contains(strings.ToLower(accept), "html") {
			t.Fatalf("WantsHTML(%q) without an HTML type", accept)
		}
	})
}
