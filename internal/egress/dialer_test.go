package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// canary is a real HTTP server on a loopback address, answering "canary".
func canary(t *testing.T, ip string) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "canary")
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func hostPort(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// fakeDNS answers from a table; each name's answers are used in turn, so
// a second lookup can return something else (as a rebinding attacker's
// DNS server would).
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	lookups int
}

func (f *fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	as := f.answers[host]
	if len(as) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	a := as[0]
	if len(as) > 1 {
		f.answers[host] = as[1:]
	}
	return a, nil
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func TestDialer(t *testing.T) {
	srv := canary(t, "127.0.0.1")
	hp := hostPort(t, srv.URL)
	_, port, _ := net.SplitHostPort(hp)
	dns := &fakeDNS{answers: map[string][][]netip.Addr{
		"canary.test":  {addrs("127.0.0.1")},
		"mixed.test":   {addrs("8.8.8.8", "127.0.0.1")},
		"private.test": {addrs("10.1.2.3")},
		"allowed.test": {addrs("127.0.0.1")},
	}}
	tests := []struct {
		name   string
		policy string
		addr   string
		ok     bool
	}{
		{"loopback refused", "", hp, false},
		{"loopback allowed", "127.0.0.1", hp, true},
		{"loopback by range", "127.0.0.0/8", hp, true},
		{"other loopback still refused", "127.0.0.2", hp, false},
		{"name to loopback refused", "", "canary.test:" + port, false},
		{"name to loopback allowed by address", "127.0.0.1", "canary.test:" + port, true},
		{"name allowed by name", "allowed.test", "allowed.test:" + port, true},
		{"name allowed by wildcard", "*.test", "allowed.test:" + port, true},
		{"one inside address refuses the name", "", "mixed.test:" + port, false},
		{"mapped loopback refused", "", "[::ffff:127.0.0.1]:" + port, false},
		{"metadata refused", "", "169.254.169.254:80", false},
		{"private name refused", "", "private.test:80", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &Dialer{Policy: MustParse(tc.policy), Resolver: dns, Timeout: 5 * time.Second}
			c, err := d.DialContext(ctxT(t), "tcp", tc.addr)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("err = %v, want ErrRefused", err)
			}
		})
	}
	if _, err := (&Dialer{}).DialContext(ctxT(t), "udp", "8.8.8.8:53"); !errors.Is(err, ErrRefused) {
		t.Errorf("udp: %v", err)
	}
}

// TestDialerRebinding: a name is resolved once and the connection goes to
// the address that was checked, whatever the DNS says afterwards.
func TestDialerRebinding(t *testing.T) {
	allowed := canary(t, "127.0.0.1")
	_, port, _ := net.SplitHostPort(hostPort(t, allowed.URL))
	// A listener on the refused address, same port when possible: if the
	// dialler looked the name up twice it would land here.
	inside, err := net.Listen("tcp", "127.0.0.2:"+port)
	if err == nil {
		defer inside.Close()
		go func() {
			for {
				c, err := inside.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ninside")
				c.Close()
			}
		}()
	}
	dns := &fakeDNS{answers: map[string][][]netip.Addr{"rebind.test": {addrs("127.0.0.1"), addrs("127.0.0.2")}}}
	d := &Dialer{Policy: MustParse("127.0.0.1"), Resolver: dns}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	resp, err := client.Get("http://rebind.test:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "canary" {
		t.Fatalf("body = %q", body)
	}
	// The second lookup now says 127.0.0.2, which is refused.
	if _, err := client.Get("http://rebind.test:" + port + "/"); !errors.Is(err, ErrRefused) {
		t.Fatalf("second fetch: %v", err)
	}
	if dns.lookups != 2 {
		t.Errorf("%d lookups for two dials", dns.lookups)
	}
}

// proxyRig serves a Proxy on a unix socket in a short temporary directory
// and returns an HTTP client that reaches it.
func proxyRig(t *testing.T, policy string, dns Resolver) (*http.Client, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "egress")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "proxy.sock")
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	s := Serve(ln, NewProxy(&Dialer{Policy: MustParse(policy), Resolver: dns}, nil))
	t.Cleanup(func() { s.Close() })
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	tr := &http.Transport{
		Proxy:           http.ProxyURL(&url.URL{Scheme: "http", Host: "proxy"}),
		DialContext:     dial,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, sock
}

func get(c *http.Client, u string) (int, string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestProxy(t *testing.T) {
	plain := canary(t, "127.0.0.1")
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "tls canary") }))
	defer tlsSrv.Close()
	other := canary(t, "127.0.0.2")
	mux := http.NewServeMux()
	mux.HandleFunc("/to-private", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, other.URL+"/", http.StatusFound) })
	mux.HandleFunc("/to-plain", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, plain.URL+"/", http.StatusFound) })
	redirector := httptest.NewServer(mux)
	defer redirector.Close()

	t.Run("refused by default", func(t *testing.T) {
		c, _ := proxyRig(t, "", nil)
		code, body, err := get(c, plain.URL)
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, "loopback") || !strings.Contains(body, "--egress-allow") {
			t.Fatalf("plain: %d %q %v", code, body, err)
		}
		if _, _, err := get(c, tlsSrv.URL); err == nil || !strings.Contains(err.Error(), "Forbidden") {
			t.Fatalf("CONNECT: %v", err)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		c, _ := proxyRig(t, "127.0.0.1", nil)
		if code, body, err := get(c, plain.URL); err != nil || code != 200 || body != "canary" {
			t.Fatalf("plain: %d %q %v", code, body, err)
		}
		if code, body, err := get(c, tlsSrv.URL); err != nil || code != 200 || body != "tls canary" {
			t.Fatalf("CONNECT: %d %q %v", code, body, err)
		}
	})
	t.Run("redirect to a refused address", func(t *testing.T) {
		c, _ := proxyRig(t, "127.0.0.1", nil)
		if code, body, err := get(c, redirector.URL+"/to-plain"); err != nil || code != 200 || body != "canary" {
			t.Fatalf("allowed hop: %d %q %v", code, body, err)
		}
		code, body, err := get(c, redirector.URL+"/to-private")
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, "127.0.0.2") {
			t.Fatalf("refused hop: %d %q %v", code, body, err)
		}
	})
	t.Run("names", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(hostPort(t, plain.URL))
		dns := &fakeDNS{answers: map[string][][]netip.Addr{"canary.test": {addrs("127.0.0.1")}}}
		c, _ := proxyRig(t, "canary.test", dns)
		if code, body, err := get(c, "http://canary.test:"+port+"/"); err != nil || code != 200 || body != "canary" {
			t.Fatalf("by name: %d %q %v", code, body, err)
		}
	})
	t.Run("not a proxy request", func(t *testing.T) {
		_, sock := proxyRig(t, "", nil)
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%v %v", resp, err)
		}
	})
}

// TestListenUnixLongPath: a socket deeper than unix paths allow still
// listens, and its file goes with Close.
func TestListenUnixLongPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	sock := filepath.Join(dir, "egress.sock")
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, "hi")
			c.Close()
		}
	}()
	d, _ := os.Open(dir)
	defer d.Close()
	c, err := net.Dial("unix", fmt.Sprintf("/proc/self/fd/%d/egress.sock", d.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "hi" {
		t.Fatalf("read %q", b)
	}
	ln.Close()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket file left: %v", err)
	}
}
