package host

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Browsers. A web page the user happens to open can send requests to an
// agent on localhost or the LAN, and open WebSockets to it: the browser
// attaches an Origin header naming the page. The host admits requests
// that carry no Origin (curl, SDKs, the seed's Node app.js), its own pages
// (/docs), pages served from loopback (a developer's local front end) and
// the origins host.yaml's allowed_origins lists; any other origin is
// refused with 403 before anything runs, over HTTP and WebSocket alike,
// and gets no CORS headers.

// originPattern is one allowed_origins entry: scheme, host and port, each
// of which may use "*" wildcards (path.Match syntax on the host and port).
type originPattern struct{ scheme, host, port string }

// parseOriginPattern reads "https://app.example.com", "http://*.lan:*" or
// "*" (every origin, for a host that is meant to be public to pages).
func parseOriginPattern(s string) (originPattern, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	if s == "*" {
		return originPattern{"*", "*", "*"}, nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || rest == "" || strings.ContainsAny(rest, "/?#@") {
		return originPattern{}, fmt.Errorf("origin %q: want scheme://host[:port], e.g. https://app.example.com", s)
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		host, port = rest[:i], rest[i+1:]
	}
	p := originPattern{scheme: strings.ToLower(scheme), host: strings.ToLower(strings.Trim(host, "[]")), port: port}
	for _, part := range []string{p.scheme, p.host, p.port} {
		if _, err := path.Match(part, ""); err != nil {
			return originPattern{}, fmt.Errorf("origin %q: bad pattern", s)
		}
	}
	return p, nil
}

func (p originPattern) match(scheme, host, port string) bool {
	m := func(pat, s string) bool {
		if pat == "" {
			return s == ""
		}
		ok, _ := path.Match(pat, s)
		return ok
	}
	return m(p.scheme, scheme) && m(p.host, host) && (m(p.port, port) || p.port == "" && port == defaultPort(scheme))
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// originAllowed reports whether a request's Origin may use the API.
func originAllowed(r *http.Request, allowed []string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false // "null" (sandboxed frames, files) and the like
	}
	scheme, host, port := u.Scheme, strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	// The host's own pages: the origin names the host the request was
	// sent to.
	if strings.EqualFold(u.Host, r.Host) || strings.EqualFold(net.JoinHostPort(host, port), hostWithPort(r)) {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, a := range allowed {
		if p, err := parseOriginPattern(a); err == nil && p.match(scheme, host, port) {
			return true
		}
	}
	return false
}

// hostWithPort is the request's Host with its port made explicit.
func hostWithPort(r *http.Request) string {
	h := r.Host
	if _, _, err := net.SplitHostPort(h); err == nil {
		return strings.ToLower(h)
	}
	port := "80"
	if r.TLS != nil {
		port = "443"
	}
	return strings.ToLower(net.JoinHostPort(strings.Trim(h, "[]"), port))
}

// errOrigin refuses a page of another origin.
func errOrigin(r *http.Request) error {
	return errorf(http.StatusForbidden, "origin %s may not use this agent: add it to allowed_origins in host.yaml", clipString(r.Header.Get("Origin"), 100))
}
