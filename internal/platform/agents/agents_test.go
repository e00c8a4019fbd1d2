package agents

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform/store"
)

func TestParsePortRange(t *testing.T) {
	r, err := ParsePortRange(" 20000 - 20010 ")
	if err != nil || r != (PortRange{20000, 20010}) {
		t.Fatalf("ParsePortRange = %v, %v", r, err)
	}
	for _, bad := range []string{"", "20000", "a-b", "0-10", "10-5", "1-65536", "-5"} {
		if _, err := ParsePortRange(bad); err == nil {
			t.Errorf("ParsePortRange(%q) succeeded", bad)
		}
	}
}

func FuzzParsePortRange(f *testing.F) {
	for _, s := range []string{"20000-20999", "1-1", "x", "-1-2", "65535-65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParsePortRange(s)
		if err == nil && (r.Min < 1 || r.Max > 65535 || r.Min > r.Max) {
			t.Fatalf("ParsePortRange(%q) = %v", s, r)
		}
	})
}

func TestPortPool(t *testing.T) {
	busy := map[int]bool{10002: true}
	p := NewPortPool(PortRange{10000, 10003}, func(port int) bool { return !busy[port] })
	a, err := p.Reserve("a", 0)
	if err != nil || a != 10000 {
		t.Fatalf("a = %d, %v", a, err)
	}
	if again, _ := p.Reserve("a", 0); again != a {
		t.Fatalf("an agent holding a free port keeps it: %d", again)
	}
	b, _ := p.Reserve("b", 10000) // preferred but taken by a
	if b != 10001 {
		t.Fatalf("b = %d", b)
	}
	c, _ := p.Reserve("c", 0) // 10002 is busy on the host
	if c != 10003 {
		t.Fatalf("c = %d, want 10003 (10002 has a listener)", c)
	}
	if _, err := p.Reserve("d", 0); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("exhausted pool: %v", err)
	}
	if p.Len() != 3 || !p.Holds("b") || p.Holds("d") {
		t.Fatalf("Len = %d", p.Len())
	}
	p.Release("b")
	d, err := p.Reserve("d", 0)
	if err != nil || d != 10001 {
		t.Fatalf("after release: %d, %v", d, err)
	}
	// A port that got a listener meanwhile is replaced.
	busy[10000] = true
	p.Release("c")
	if moved, err := p.Reserve("a", 0); err != nil || moved != 10003 {
		t.Fatalf("moved = %d, %v", moved, err)
	}
	// Claim takes a port without probing (a recovered runtime listens on it).
	p.Claim("e", 10002)
	if !p.Holds("e") {
		t.Fatal("Claim")
	}
	p.Release("e")
	p.Release("nobody")
}

func TestLoopbackProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if loopbackFree(port) {
		t.Fatal("a port with a listener is not free")
	}
	ln.Close()
	if !loopbackFree(port) {
		t.Fatal("a closed listener's port is free")
	}
}

func TestBackoff(t *testing.T) {
	p := RestartPolicy{Backoff: time.Second, MaxBackoff: 5 * time.Second}
	var got []time.Duration
	for n := 1; n <= 5; n++ {
		got = append(got, p.backoff(n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff = %v, want %v", got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := []CreateRequest{{Name: "a"}, {Name: strings.Repeat("é", 100)}, {Name: "a", Model: "openai/gpt-4o-mini"}}
	for _, r := range ok {
		if err := r.validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := map[string]CreateRequest{
		"name":          {Name: strings.Repeat("é", 101)},
		"model":         {Name: "a", Model: "/x"},
		"hiddenPrompt":  {Name: "a", HiddenPrompt: strings.Repeat("x", MaxPromptLen+1)},
		"initialPrompt": {Name: "a", InitialPrompt: strings.Repeat("x", MaxPromptLen+1)},
	}
	for field, r := range bad {
		var inv *InvalidError
		if err := r.validate(); !errors.As(err, &inv) || inv.Field != field || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestCommandTemplate(t *testing.T) {
	m := &Manager{cfg: Config{Command: []string{"/bin/agenthost", "serve", "--name={agentId}", "--port", "{port}"}}}
	got := strings.Join(m.command(agentFixture("cabc"), 20001), " ")
	if got != "/bin/agenthost serve --name=cabc --port 20001" {
		t.Fatalf("command = %q", got)
	}
}

func agentFixture(id string) store.Agent { return store.Agent{ID: id} }
