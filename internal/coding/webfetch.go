package coding

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/egress"
)

const (
	fetchDefaultTimeout = 30 * time.Second
	fetchMaxTimeout     = 120 * time.Second
	fetchMaxOutput      = 50 << 10
	fetchMaxRedirects   = 10
)

// webfetchArgs are the arguments of the webfetch tool.
type webfetchArgs struct {
	URL     string `json:"url" jsonschema:"the http or https URL to fetch"`
	Format  string `json:"format,omitempty" jsonschema:"text (the default: HTML becomes readable text) or raw (the body as sent)"`
	Timeout int    `json:"timeout,omitempty" jsonschema:"timeout in seconds (default 30, at most 120)"`
}

func webfetchTool(opts Options) agent.Tool {
	client := opts.HTTPClient
	if client == nil {
		d := opts.Egress
		if d == nil {
			d = &egress.Dialer{}
		}
		// Every connection, the first and each redirect's, dials through
		// the egress policy; never through the runtime's own proxy.
		client = &http.Client{CheckRedirect: checkRedirect, Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         d.DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     30 * time.Second,
			MaxIdleConns:        8,
		}}
	}
	return newTool("webfetch", "Fetch an http(s) URL and return its content; HTML is converted to readable text. Large pages are cut.",
		func(ctx context.Context, a webfetchArgs) (string, error) {
			return fetch(ctx, client, opts.FetchLimit, a)
		},
		func(_ context.Context, a webfetchArgs) (Request, error) {
			u, err := parseFetchURL(a.URL)
			if err != nil {
				return Request{}, err
			}
			return Request{Permission: "webfetch", Patterns: []string{u.String()},
				Metadata: map[string]any{"url": u.String(), "host": u.Host}}, nil
		})
}

// checkRedirect keeps redirects on http(s), so an allowed fetch cannot be
// bounced to file: or another scheme.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= fetchMaxRedirects {
		return fmt.Errorf("stopped after %d redirects", fetchMaxRedirects)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("refusing redirect to %s: only http and https are fetched", req.URL.Scheme)
	}
	return nil
}

// parseFetchURL accepts only absolute http(s) URLs with a host.
func parseFetchURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("bad URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("refusing %q: only http and https URLs are fetched", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("bad URL %q: no host", raw)
	}
	return u, nil
}

func fetch(ctx context.Context, client *http.Client, limit int64, a webfetchArgs) (string, error) {
	if a.Format != "" && a.Format != "text" && a.Format != "raw" {
		return "", fmt.Errorf("format must be text or raw, not %q", a.Format)
	}
	u, err := parseFetchURL(a.URL)
	if err != nil {
		return "", err
	}
	timeout := fetchDefaultTimeout
	if a.Timeout > 0 {
		timeout = min(time.Duration(a.Timeout)*time.Second, fetchMaxTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", u, err)
	}
	req.Header.Set("User-Agent", "agenthost-webfetch/1")
	req.Header.Set("Accept", "text/html, text/plain, text/markdown, application/json, */*;q=0.5")
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", fmt.Errorf("fetch %s: timed out after %s: %w", u, timeout, err)
		}
		return "", fmt.Errorf("fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return "", fmt.Errorf("fetch %s: reading body: %w", u, err)
	}
	truncated := int64(len(body)) > limit
	if truncated {
		body = body[:limit]
	}
	ctype := resp.Header.Get("Content-Type")
	if ctype == "" {
		ctype = http.DetectContentType(body)
	}
	mediaType, _, _ := mime.ParseMediaType(ctype)
	if resp.StatusCode >= 400 {
		return "", fmt.Errorf("fetch %s: HTTP %s: %s", u, resp.Status, cutUTF8(strings.TrimSpace(htmlToText(string(body))), 500))
	}
	var text string
	switch {
	case a.Format != "raw" && (mediaType == "text/html" || mediaType == "application/xhtml+xml"):
		text = htmlToText(string(body))
	case isTextType(mediaType) || utf8.Valid(body) && !isBinary(body[:min(len(body), sniffBytes)]):
		text = string(body)
	default:
		return fmt.Sprintf("%s returned %s content (%d bytes), which is not shown.", resp.Request.URL, ctype, len(body)), nil
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "URL: %s\nContent-Type: %s\n", resp.Request.URL, ctype)
	if truncated {
		fmt.Fprintf(&sb, "[download stopped at %d bytes]\n", limit)
	}
	sb.WriteString("\n")
	sb.WriteString(capText(strings.ToValidUTF8(text, "\uFFFD"), fetchMaxOutput))
	return sb.String(), nil
}

func isTextType(mt string) bool {
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || mt == "application/xml" ||
		mt == "application/javascript" || strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml")
}

// skipElements hold no readable text.
var skipElements = map[string]bool{"script": true, "style": true, "noscript": true, "template": true, "svg": true, "iframe": true, "object": true, "canvas": true}

// blockElements start on a new line.
var blockElements = map[string]bool{
	"p": true, "div": true, "br": true, "tr": true, "table": true, "section": true, "article": true, "header": true,
	"footer": true, "nav": true, "main": true, "aside": true, "ul": true, "ol": true, "dl": true, "dt": true, "dd": true,
	"blockquote": true, "pre": true, "hr": true, "form": true, "figure": true, "figcaption": true, "title": true, "body": true,
}

var (
	tagName   = regexp.MustCompile(`^</?([a-zA-Z][a-zA-Z0-9-]*)`)
	hrefAttr  = regexp.MustCompile(`(?i)\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)
	blankRuns = regexp.MustCompile(`\n{3,}`)
	spaceRuns = regexp.MustCompile(`[ \t\r\f\v\n]+`)
)

// htmlToText turns HTML into plain text a model can read: scripts and
// styles dropped, blocks on their own lines, headings and list items
// marked as in Markdown, links kept as [text](url), entities decoded. It
// is a tolerant scan, not a parser; malformed markup degrades to text.
func htmlToText(s string) string {
	var out []byte
	var text strings.Builder // pending text, whitespace collapsed on flush
	pre := 0
	var href string
	flush := func() {
		t := html.UnescapeString(text.String())
		text.Reset()
		if pre == 0 {
			t = spaceRuns.ReplaceAllString(t, " ")
			if len(out) == 0 || out[len(out)-1] == '\n' || out[len(out)-1] == ' ' {
				t = strings.TrimLeft(t, " ")
			}
		}
		out = append(out, t...)
	}
	newline := func(prefix string) {
		flush()
		for len(out) > 0 && out[len(out)-1] == ' ' {
			out = out[:len(out)-1]
		}
		if len(out) > 0 {
			out = append(out, '\n')
		}
		out = append(out, prefix...)
	}
	for i := 0; i < len(s); {
		lt := strings.IndexByte(s[i:], '<')
		if lt < 0 {
			text.WriteString(s[i:])
			break
		}
		text.WriteString(s[i : i+lt])
		i += lt
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "<!--"):
			end := strings.Index(rest, "-->")
			if end < 0 {
				i = len(s)
			} else {
				i += end + 3
			}
			continue
		case strings.HasPrefix(rest, "<!") || strings.HasPrefix(rest, "<?"):
			i += tagEnd(rest)
			continue
		}
		m := tagName.FindStringSubmatch(rest)
		if m == nil {
			text.WriteByte('<')
			i++
			continue
		}
		end := tagEnd(rest)
		tag := rest[:end]
		i += end
		name := strings.ToLower(m[1])
		closing := strings.HasPrefix(tag, "</")
		switch {
		case skipElements[name] && !closing:
			if !strings.HasSuffix(tag, "/>") {
				j := indexCloseTag(s[i:], name)
				if j < 0 {
					i = len(s)
				} else {
					i += j
					i += tagEnd(s[i:])
				}
			}
		case len(name) == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6':
			if closing {
				newline("")
			} else {
				newline("\n" + strings.Repeat("#", int(name[1]-'0')) + " ")
			}
		case name == "li":
			if !closing {
				newline("- ")
			}
		case name == "a":
			if closing {
				if href != "" {
					flush()
					out = fmt.Appendf(out, "](%s)", href)
					href = ""
				}
				continue
			}
			href = ""
			if hm := hrefAttr.FindStringSubmatch(tag); hm != nil {
				h := html.UnescapeString(hm[1] + hm[2] + hm[3])
				if h != "" && !strings.HasPrefix(h, "#") && !strings.HasPrefix(strings.ToLower(h), "javascript:") {
					href = h
					flush()
					out = append(out, '[')
				}
			}
		case name == "pre":
			newline("")
			if closing {
				pre = max(pre-1, 0)
			} else {
				pre++
			}
		case name == "td" || name == "th":
			flush()
			if len(out) > 0 && out[len(out)-1] != '\n' && out[len(out)-1] != ' ' {
				out = append(out, ' ')
			}
		case blockElements[name]:
			newline("")
		}
	}
	flush()
	res := blankRuns.ReplaceAllString(string(out), "\n\n")
	lines := strings.Split(res, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// indexCloseTag finds "</name" in s, ignoring case.
func indexCloseTag(s, name string) int {
	for off := 0; ; {
		j := strings.Index(s[off:], "</")
		if j < 0 {
			return -1
		}
		j += off
		if end := j + 2 + len(name); end <= len(s) && strings.EqualFold(s[j+2:end], name) {
			return j
		}
		off = j + 2
	}
}

// tagEnd returns the length of the tag at the start of s, honouring quoted
// attribute values that contain '>'.
func tagEnd(s string) int {
	var quote byte
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return i + 1
		}
	}
	return len(s)
}
