package session

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// The page a person sees when a session link does not open: a browser that
// loads a bad or expired link gets a page saying what happened and what to
// do, not the API's JSON error.

// errorText is what the error page says for one status.
type errorText struct{ Title, What, Todo string }

const askForLink = "Ask the organisation that gave you this link for a new one."

var errorTexts = map[int]errorText{
	http.StatusUnauthorized: {
		Title: "This session link is incomplete",
		What:  "The link is missing its access key (the part after ?cap=), so it does not open the conversation.",
		Todo:  "Check that you copied the whole link. If it still does not open, ask the organisation that gave it to you for a new one.",
	},
	http.StatusForbidden: {
		Title: "This session link does not give access",
		What:  "The link is valid, but it does not allow what was asked.",
		Todo:  askForLink,
	},
	http.StatusNotFound: {
		Title: "This session link does not work",
		What:  "The link is wrong or has expired: the conversation it opened, or its agent, no longer exists.",
		Todo:  askForLink,
	},
}

// fallbackText is said for every other status (the platform failing).
var fallbackText = errorText{
	Title: "This conversation cannot be opened right now",
	What:  "Something went wrong on the server that hosts it.",
	Todo:  "Try again in a moment. If it keeps happening, ask the organisation that gave you this link.",
}

var errorTmpl, errorCSP = buildErrorPage()

func buildErrorPage() (*template.Template, string) {
	css := string(must(fs.ReadFile(FS, "error.css")))
	src := strings.Replace(string(must(fs.ReadFile(FS, "error.html"))), "{{.Style}}", css, 1)
	t := template.Must(template.New("error").Parse(src))
	policy := fmt.Sprintf("default-src 'none'; style-src '%s'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors *", hash(css))
	return t, policy
}

// WriteError answers a session page load that failed with status as an
// HTML page for a person: what happened and what to do (ask the
// organisation for a new link). Its style is pinned by hash in its
// Content-Security-Policy, it runs no script, and like the page it may be
// framed and never sends its URL as a referrer.
func WriteError(w http.ResponseWriter, status int) {
	text, ok := errorTexts[status]
	if !ok {
		text = fallbackText
	}
	var b bytes.Buffer
	err := errorTmpl.Execute(&b, struct {
		errorText
		Status string
	}{text, strconv.Itoa(status) + " " + http.StatusText(status)})
	if err != nil { // the template and its data are fixed: a bug
		panic(err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", errorCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// WantsHTML reports whether a request's Accept header asks for HTML at
// least as much as for JSON: a browser loading the page (text/html first)
// does, fetch and API clients (*/*, application/json) do not.
func WantsHTML(r *http.Request) bool {
	var html, json float64 = -1, -1
	for _, part := range strings.Split(strings.Join(r.Header.Values("Accept"), ","), ",") {
		typ, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		switch typ {
		case "text/html", "application/xhtml+xml":
			html = max(html, q)
		case "application/json":
			json = max(json, q)
		}
	}
	return html > 0 && html >= json
}
