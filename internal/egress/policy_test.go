package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// noLocalAddrs makes the host's own addresses irrelevant to a test.
func noLocalAddrs(t *testing.T) {
	orig := localAddrs
	localAddrs = func() []netip.Addr { return nil }
	t.Cleanup(func() { localAddrs = orig })
}

// An address of the host's own interfaces is refused like loopback, unless
// the operator allows it.
func TestCheckLocal(t *testing.T) {
	orig := localAddrs
	localAddrs = func() []netip.Addr {
		return []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::9")}
	}
	t.Cleanup(func() { localAddrs = orig })
	for _, a := range []string{"203.0.113.9", "::ffff:203.0.113.9", "2001:db8::9"} {
		if err := (*Policy)(nil).Check("", netip.MustParseAddr(a)); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "an address of this host") {
			t.Errorf("%s: %v, want refused as an address of this host", a, err)
		}
	}
	if err := (*Policy)(nil).Check("", netip.MustParseAddr("203.0.113.10")); err != nil {
		t.Errorf("a neighbour of the host's address: %v", err)
	}
	if err := MustParse("203.0.113.9").Check("", netip.MustParseAddr("203.0.113.9")); err != nil {
		t.Errorf("allowed by the operator: %v", err)
	}
	// The real interfaces: loopback is there, and refused.
	localAddrs = orig
	if !isLocal(netip.MustParseAddr("127.0.0.1")) {
		t.Error("127.0.0.1 is not among this host's interface addresses")
	}
}

// Deny entries win over everything, the operator's allow list included.
func TestDeny(t *testing.T) {
	noLocalAddrs(t)
	p := MustParse("203.0.113.0/24")
	if err := p.Deny("203.0.113.9, 198.51.100.0/24"); err != nil {
		t.Fatal(err)
	}
	for addr, refused := range map[string]bool{"203.0.113.9": true, "203.0.113.8": false, "198.51.100.7": true, "::ffff:198.51.100.7": true, "8.8.8.8": false} {
		err := p.Check("", netip.MustParseAddr(addr))
		if refused != errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, refused should be %v", addr, err, refused)
		}
	}
	for _, bad := range []string{"git.example", "10.0.0.0/99", "nope"} {
		if err := (&Policy{}).Deny(bad); err == nil {
			t.Errorf("Deny(%q) accepted", bad)
		}
	}
}

func TestCheckDefault(t *testing.T) {
	noLocalAddrs(t)
	tests := []struct {
		addr    string
		refused string // a word of the reason; "" when allowed
	}{
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"198.51.100.7", ""},      // TEST-NET-2: public, so tests can stand up "public" servers
		{"203.0.113.1", ""},       // TEST-NET-3
		{"192.0.2.1", ""},         // TEST-NET-1
		{"2001:db8::1", ""},       // IPv6 documentation
		{"2606:4700::1", ""},      // a public IPv6 address
		{"2002:0808:0808::1", ""}, // 6to4 of 8.8.8.8
		{"64:ff9b::808:808", ""},  // NAT64 of 8.8.8.8
		{"127.0.0.1", "loopback"},
		{"127.255.0.9", "loopback"},
		{"::1", "loopback"},
		{"0.0.0.0", "this network"},
		{"0.1.2.3", "this network"},
		{"::", "unspecified"},
		{"10.0.0.1", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"100.64.0.1", "CGNAT"},
		{"169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "reserved"},
		{"240.0.0.1", "reserved"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:169.254.169.254", "link-local"},
		{"::ffff:10.1.2.3", "private"},
		{"64:ff9b::7f00:1", "loopback"},      // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", "link-local"}, // NAT64 of 169.254.169.254
		{"64:ff9b:1::a00:1", "NAT64"},        // local-use NAT64
		{"2002:7f00:0001::1", "loopback"},    // 6to4 of 127.0.0.1
		{"2002:c0a8:0101::1", "private"},     // 6to4 of 192.168.1.1
		{"::127.0.0.1", "IPv4-compatible"},   // deprecated IPv4-compatible
		{"fec0::1", "site-local"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			err := (*Policy)(nil).Check("", netip.MustParseAddr(tc.addr))
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("err = %v, want ErrRefused", err)
			}
			var re *RefusedError
			if !errors.As(err, &re) || !strings.Contains(re.Reason, tc.refused) {
				t.Errorf("err = %v, want reason with %q", err, tc.refused)
			}
			if !strings.Contains(err.Error(), "--egress-allow") {
				t.Errorf("message does not say how to allow it: %v", err)
			}
		})
	}
}

func TestParseAndAllow(t *testing.T) {
	p, err := Parse(" 10.1.0.0/16, 127.0.0.1 ,, ::1, Git.Corp.Example., *.svc.internal, ::ffff:192.168.0.0/112")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.String(), "10.1.0.0/16,127.0.0.1,::1,192.168.0.0/16,git.corp.example,*.svc.internal"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	tests := []struct {
		addr    string
		allowed bool
	}{
		{"10.1.2.3", true},
		{"10.2.0.1", false},
		{"127.0.0.1", true},
		{"127.0.0.2", false},
		{"::ffff:127.0.0.1", true},
		{"64:ff9b::7f00:1", true},
		{"::1", true},
		{"192.168.44.1", true},
		{"169.254.169.254", false},
		{"8.8.8.8", true},
	}
	for _, tc := range tests {
		err := p.Check("", netip.MustParseAddr(tc.addr))
		if (err == nil) != tc.allowed {
			t.Errorf("Check(%s) = %v, want allowed=%v", tc.addr, err, tc.allowed)
		}
	}
	for name, want := range map[string]bool{
		"git.corp.example": true, "GIT.corp.example.": true, "x.git.corp.example": false,
		"a.svc.internal": true, "a.b.svc.internal": true, "svc.internal": false, "corp.example": false,
	} {
		if got := p.AllowsHost(name); got != want {
			t.Errorf("AllowsHost(%q) = %v, want %v", name, got, want)
		}
	}
	if (*Policy)(nil).AllowsHost("localhost") {
		t.Error("nil policy allows a host")
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "999.1.1.1", "1.2.3", "host name", "a..b", "-x.example", "fe80::1%eth0", "http://x", "*."} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		} else if !strings.Contains(err.Error(), bad) {
			t.Errorf("Parse(%q): error does not name the entry: %v", bad, err)
		}
	}
	if p, err := Parse(""); err != nil || p.String() != "" {
		t.Errorf("Parse(\"\") = %v, %v", p, err)
	}
}

func TestRefusedMessage(t *testing.T) {
	err := (*Policy)(nil).Check("metadata.internal", netip.MustParseAddr("169.254.169.254"))
	msg := err.Error()
	for _, want := range []string{"metadata.internal (169.254.169.254)", "link-local", "--egress-allow metadata.internal or 169.254.169.254", "AGENTHOST_EGRESS_ALLOW"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

// FuzzPolicy checks that Parse never panics, that what it accepts prints
// back to an equal policy, and that the allow list only ever adds: an
// address the default policy allows stays allowed, and an allowed entry's
// own address passes.
func FuzzPolicy(f *testing.F) {
	for _, s := range []string{"", "10.0.0.0/8", "127.0.0.1,::1", "example.com,*.corp", "::ffff:10.0.0.0/104", "1.2.3.4/0", "a_b.c-d", "fe80::/10,,"} {
		f.Add(s, "127.0.0.1")
	}
	f.Add("10.0.0.0/8", "10.9.8.7")
	f.Add("", "64:ff9b::7f00:1")
	f.Fuzz(func(t *testing.T, list, addr string) {
		p, err := Parse(list)
		if err != nil {
			return
		}
		q, err := Parse(p.String())
		if err != nil {
			t.Fatalf("String() %q does not parse: %v", p.String(), err)
		}
		if q.String() != p.String() {
			t.Fatalf("round trip: %q != %q", q.String(), p.String())
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		def := (*Policy)(nil).Check("", ip)
		got := p.Check("", ip)
		if def == nil && got != nil {
			t.Fatalf("allow list %q refuses %s which the default allows: %v", list, ip, got)
		}
		if got != nil && !errors.Is(got, ErrRefused) {
			t.Fatalf("refusal does not wrap ErrRefused: %v", got)
		}
		for _, pfx := range p.prefixes {
			if err := p.Check("", pfx.Addr()); err != nil {
				t.Fatalf("allowed %s refused: %v", pfx, err)
			}
		}
	})
}
