package coding

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWebfetchRefusesLoopback: by default webfetch reaches only the public
// internet; the host's loopback (the platform's API, other runtimes) is
// refused.
func TestWebfetchRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "loopback-canary") }))
	defer srv.Close()
	tools, err := Tools(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools {
		if tl.Spec().Name != "webfetch" {
			continue
		}
		out, err := tl.Call(context.Background(), []byte(`{"url":"`+srv.URL+`"}`))
		if err == nil || strings.Contains(out, "loopback-canary") {
			t.Fatalf("fetched the host's loopback: %q %v", out, err)
		}
	}
}
