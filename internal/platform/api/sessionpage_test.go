package api_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
)

// browserAccept is what Chromium sends when it loads a page.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"

// TestSessionPageErrors: a session link that does not open answers a
// browser's page load with an HTML page (same status as before: 401 with
// no capability, 404 for a wrong one or one whose agent is gone) that says
// what happened and to ask the organisation for a new link, its style
// pinned by hash in its CSP, framable by the configured origins, with a
// request id; every other client (no Accept, */*, JSON first) keeps the
// JSON error. Every answer validates against the OpenAPI document.
// Before the HTML page, a browser got {"error":"session not found"}.
func TestSessionPageErrors(t *testing.T) {
	env := platformtest.Start(t, platformtest.Options{Configure: func(c *platform.Config) { c.FrameAncestors = "https://app.example.com" }})
	page := "/a/ag_missing/session/ses_1"
	// A capability the platform minted, for an agent that no longer
	// exists: an expired link.
	expired := strings.TrimPrefix(env.Server.API().SessionURL("ag_gone", "ses_1"), env.URL)
	for _, link := range []struct {
		name, path string
		status     int
		says       string
	}{
		{"no capability", page, http.StatusUnauthorized, "missing its access key"},
		{"wrong capability", page + "?cap=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http.StatusNotFound, "wrong or has expired"},
		{"expired", expired, http.StatusNotFound, "wrong or has expired"},
	} {
		for _, accept := range []struct {
			name, header string
			html         bool
		}{
			{"browser", browserAccept, true},
			{"html only", "text/html", true},
			{"none", "", false},
			{"any", "*/*", false},
			{"json", "application/json", false},
			{"json first", "application/json, text/html;q=0.5", false},
			{"html refused", "text/html;q=0, */*", false},
		} {
			t.Run(link.name+"/"+accept.name, func(t *testing.T) {
				req, _ := http.NewRequest("GET", env.URL+link.path, nil)
				if accept.header != "" {
					req.Header.Set("Accept", accept.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, msg := range platformtest.CheckResponse(req, resp.StatusCode, resp.Header, body) {
					t.Errorf("answer does not match the OpenAPI document: %s", msg)
				}
				if resp.StatusCode != link.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, link.status, body)
				}
				if resp.Header.Get("X-Request-Id") == "" {
					t.Error("no X-Request-Id")
				}
				ct := resp.Header.Get("Content-Type")
				if !accept.html {
					var m map[string]string
					if !strings.HasPrefix(ct, "application/json") || json.Unmarshal(body, &m) != nil || m["error"] == "" {
						t.Fatalf("want the JSON error, got %q: %s", ct, body)
					}
					return
				}
				if !strings.HasPrefix(ct, "text/html") {
					t.Fatalf("Content-Type %q: %s", ct, body)
				}
				s := string(body)
				for _, want := range []string{"<h1>", link.says, "organisation that gave", "<html lang=\"en\">"} {
					if !strings.Contains(strings.ToLower(s), strings.ToLower(want)) {
						t.Errorf("the page does not say %q:\n%s", want, s)
					}
				}
				if strings.Contains(s, "<script") || strings.Contains(s, `"error"`) {
					t.Errorf("the page has a script or the JSON error:\n%s", s)
				}
				csp := resp.Header.Get("Content-Security-Policy")
				style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(s)
				if style == nil {
					t.Fatal("no style")
				}
				sum := sha256.Sum256([]byte(style[1]))
				if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || strings.Contains(csp, "unsafe-inline") ||
					!strings.Contains(csp, "frame-ancestors https://app.example.com") || strings.Count(csp, "frame-ancestors") != 1 {
					t.Errorf("CSP %q", csp)
				}
				if resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Frame-Options") != "" {
					t.Errorf("headers %v", resp.Header)
				}
			})
		}
	}
}
