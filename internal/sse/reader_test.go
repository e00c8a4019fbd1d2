package sse

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t testing.TB, r io.Reader) ([]Event, error) {
	t.Helper()
	rd := NewReader(r)
	var out []Event
	for {
		ev, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, ev)
	}
}

func TestReader(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Event
	}{
		{"one event", "id: 7\nevent: status\ndata: {\"busy\":true}\n\n", []Event{{"7", "status", []byte(`{"busy":true}`)}}},
		{"comments and heartbeats skipped", ": ping\n\n: hi\nid: 1\n: mid\ndata: x\n\n", []Event{{"1", "", []byte("x")}}},
		{"data lines joined", "data: a\ndata:b\ndata\n\n", []Event{{"", "", []byte("a\nb\n")}}},
		{"CRLF and CR", "event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r", []Event{{"", "a", []byte("1")}, {"", "b", []byte("2")}}},
		{"only one space dropped", "data:  two\n\n", []Event{{"", "", []byte(" two")}}},
		{"a name without data", "event: ping\n\n", []Event{{"", "ping", nil}}},
		{"unknown fields ignored", "retry: 10\nfoo: bar\ndata: x\n\n", []Event{{"", "", []byte("x")}}},
		{"an id alone dispatches nothing", "id: 3\n\ndata: y\n\n", []Event{{"", "", []byte("y")}}},
		{"cut off at the end: dropped", "data: whole\n\ndata: half", []Event{{"", "", []byte("whole")}}},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time too: a CR LF split across reads is one end.
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readAll(t, r)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("got %d events %q, want %q", len(got), got, tc.want)
				}
				for i := range got {
					if got[i].ID != tc.want[i].ID || got[i].Name != tc.want[i].Name || string(got[i].Data) != string(tc.want[i].Data) {
						t.Fatalf("event %d = %q, want %q", i, got[i], tc.want[i])
					}
				}
			}
		})
	}
}

// TestReaderReadsWriter: what Writer writes, Reader reads back.
func TestReaderReadsWriter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := Start(w)
		s.Event(7, "status", []byte(`{"busy":true}`))
		s.Comment("ping")
		s.Event(0, "", []byte(`{}`))
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := readAll(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "7" || got[0].Name != "status" || string(got[0].Data) != `{"busy":true}` || string(got[1].Data) != `{}` {
		t.Fatalf("read back %q", got)
	}
}

func TestReaderLineTooLong(t *testing.T) {
	_, err := readAll(t, strings.NewReader("data: "+strings.Repeat("x", MaxLine+1)+"\n\n"))
	if !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("err = %v, want bufio.ErrTooLong", err)
	}
}

// FuzzReader: any input reads to the end without panicking, every event
// has data or a name, and no field value carries a line end.
func FuzzReader(f *testing.F) {
	f.Add("id: 7\nevent: status\ndata: {}\n\n")
	f.Add("data: a\r\ndata: b\r\r: c\n")
	f.Add("event\n\n\r\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := readAll(t, strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range got {
			if ev.Name == "" && ev.Data == nil {
				t.Fatalf("empty event dispatched: %q", ev)
			}
			if strings.ContainsAny(ev.ID+ev.Name, "\r\n") {
				t.Fatalf("line end inside a field: %q", ev)
			}
		}
	})
}
