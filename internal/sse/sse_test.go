package sse

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		s, err := Start(w)
		if err != nil {
			t.Error(err)
			return
		}
		s.Event(7, "status", []byte(`{"busy":true}`))
		s.Comment("ping")
		s.Event(0, "", []byte(`{}`))
		s.Write([]byte("id: 9\ndata: x\n\n"))
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	want := "id: 7\nevent: status\ndata: {\"busy\":true}\n\n: ping\n\ndata: {}\n\nid: 9\ndata: x\n\n"
	if string(b) != want {
		t.Fatalf("stream:\n%q\nwant\n%q", b, want)
	}
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}
