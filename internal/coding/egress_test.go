package coding

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/internal/egress"
)

func webfetchOf(t *testing.T, opts Options) func(url string) (string, error) {
	t.Helper()
	tools, err := Tools(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools {
		if tl.Spec().Name == "webfetch" {
			return func(url string) (string, error) {
				return tl.Call(context.Background(), []byte(`{"url":"`+url+`"}`))
			}
		}
	}
	t.Fatal("no webfetch")
	return nil
}

// TestWebfetchRefusesLoopback: by default webfetch reaches only the public
// internet; the host's loopback (the platform's API, other runtimes) is
// refused.
func TestWebfetchRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "loopback-canary") }))
	defer srv.Close()
	fetch := webfetchOf(t, Options{})
	for _, u := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1), "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]:1/"} {
		out, err := fetch(u)
		if !errors.Is(err, egress.ErrRefused) || strings.Contains(out, "loopback-canary") {
			t.Errorf("%s: %q %v", u, out, err)
		}
	}
}

// TestWebfetchRedirects: every redirect is checked again, on the address
// it resolves to.
func TestWebfetchRedirects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	inside := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "inside-canary") }))
	inside.Listener.Close()
	inside.Listener = ln
	inside.Start()
	defer inside.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, inside.URL+"/", http.StatusFound) })
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "allowed-page") })
	mux.HandleFunc("/hop-ok", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	allowed := httptest.NewServer(mux)
	defer allowed.Close()

	fetch := webfetchOf(t, Options{Egress: &egress.Dialer{Policy: egress.MustParse("127.0.0.1")}})
	if out, err := fetch(allowed.URL + "/hop-ok"); err != nil || !strings.Contains(out, "allowed-page") {
		t.Fatalf("allowed redirect: %q %v", out, err)
	}
	out, err := fetch(allowed.URL + "/hop")
	if !errors.Is(err, egress.ErrRefused) || strings.Contains(out, "inside-canary") || !strings.Contains(err.Error(), "127.0.0.2") {
		t.Fatalf("redirect to a refused address: %q %v", out, err)
	}
}
