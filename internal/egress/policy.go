// Package egress decides where an agent's tools may connect, and enforces
// it: a Policy (the public internet plus what the operator allows), a
// Dialer that checks every address a name resolves to and dials exactly the
// address it checked, and an HTTP proxy built on that Dialer which the tool
// sandbox reaches through a unix socket.
//
// By default everything that is not the public internet is refused:
// loopback, unspecified, link-local (including cloud metadata at
// 169.254.169.254), private, shared (CGNAT), multicast, broadcast and
// reserved ranges, in IPv4 and IPv6, and their IPv4-mapped, NAT64 and 6to4
// spellings, and every address of the host's own interfaces (a service
// bound to all interfaces answers on them as on loopback). Documentation
// ranges such as 198.51.100.0/24 count as public,
// so tests can stand up a "public" server in a network namespace. An
// operator allows more with `--egress-allow` (AGENTHOST_EGRESS_ALLOW): a
// comma-separated list of CIDRs, IP addresses and host names ("*.corp.example"
// allows every subdomain).
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// ErrRefused is wrapped by every error that refuses a connection because
// of the policy, so callers can tell a policy decision from a network
// failure with errors.Is.
var ErrRefused = errors.New("egress refused")

// RefusedError says which address was refused, why, and how an operator
// would allow it.
type RefusedError struct {
	Host   string     // the name that was asked for ("" when an address was given)
	Addr   netip.Addr // the refused address
	Reason string     // "a loopback address", ...
}

func (e *RefusedError) Error() string {
	what := e.Addr.String()
	if e.Host != "" && e.Host != what {
		what = fmt.Sprintf("%s (%s)", e.Host, what)
	}
	allow := e.Addr.String()
	if e.Host != "" && e.Host != allow {
		allow = e.Host + " or " + allow
	}
	return fmt.Sprintf("egress refused: %s is %s; the platform operator can allow it with --egress-allow %s (AGENTHOST_EGRESS_ALLOW)",
		what, e.Reason, allow)
}

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// deniedRange is a range refused by default and why.
type deniedRange struct {
	prefix netip.Prefix
	reason string
}

// denied lists what is not the public internet. IPv4-mapped, NAT64 and
// 6to4 addresses are checked by the IPv4 address they embed.
var denied = func() []deniedRange {
	list := []struct{ cidr, reason string }{
		{"0.0.0.0/8", "in 0.0.0.0/8 (\"this network\")"},
		{"127.0.0.0/8", "a loopback address"},
		{"10.0.0.0/8", "a private address"},
		{"172.16.0.0/12", "a private address"},
		{"192.168.0.0/16", "a private address"},
		{"100.64.0.0/10", "a shared (CGNAT) address"},
		{"169.254.0.0/16", "a link-local address (cloud metadata lives here)"},
		{"224.0.0.0/4", "a multicast address"},
		{"240.0.0.0/4", "a reserved address (240.0.0.0/4, including broadcast)"},
		{"::/128", "the unspecified address"},
		{"::1/128", "a loopback address"},
		{"::/96", "an IPv4-compatible address (deprecated)"},
		{"fe80::/10", "a link-local address"},
		{"fec0::/10", "a site-local address (deprecated)"},
		{"fc00::/7", "a private (unique local) address"},
		{"ff00::/8", "a multicast address"},
		{"64:ff9b:1::/48", "a local-use NAT64 address"},
	}
	out := make([]deniedRange, len(list))
	for i, d := range list {
		out[i] = deniedRange{netip.MustParsePrefix(d.cidr), d.reason}
	}
	return out
}()

var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

// embedded returns the IPv4 address an IPv6 address stands for
// (IPv4-mapped, NAT64 well-known prefix, 6to4), or ip itself.
func embedded(ip netip.Addr) netip.Addr {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return ip.Unmap()
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			return netip.AddrFrom4([4]byte(b[12:16]))
		case sixTo4.Contains(ip):
			return netip.AddrFrom4([4]byte(b[2:6]))
		}
	}
	return ip
}

// Policy is the set of destinations allowed beyond the public internet.
// The zero value and nil allow only the public internet.
type Policy struct {
	prefixes []netip.Prefix
	deny     []netip.Prefix // refused whatever else says (Deny)
	hosts    []string       // lower case, no trailing dot
	suffixes []string       // ".corp.example" for "*.corp.example"
}

// Parse reads a comma-separated allow list: CIDRs ("10.1.0.0/16"), IP
// addresses ("192.168.1.5", "::1") and host names ("git.corp.example",
// "*.corp.example"). Blank entries are ignored; anything else is an error
// naming the entry.
func Parse(list string) (*Policy, error) {
	p := &Policy{}
	for _, raw := range strings.Split(list, ",") {
		e := strings.TrimSpace(raw)
		if e == "" {
			continue
		}
		if err := p.add(e); err != nil {
			return nil, fmt.Errorf("egress allow list: %q: %w", e, err)
		}
	}
	return p, nil
}

// Deny adds a comma-separated list of CIDRs and IP addresses that are
// refused even when public or allowed: the public addresses of the host a
// runtime's container runs on, which its own interfaces do not show.
func (p *Policy) Deny(list string) error {
	for _, raw := range strings.Split(list, ",") {
		e := strings.TrimSpace(raw)
		if e == "" {
			continue
		}
		var q Policy
		if err := q.add(e); err != nil || len(q.prefixes) == 0 {
			if err == nil {
				err = errors.New("not a CIDR or an IP address")
			}
			return fmt.Errorf("egress deny list: %q: %w", e, err)
		}
		p.deny = append(p.deny, q.prefixes...)
	}
	return nil
}

// MustParse is Parse for lists fixed in code; it panics on an error.
func MustParse(list string) *Policy {
	p, err := Parse(list)
	if err != nil {
		panic(err)
	}
	return p
}

func (p *Policy) add(e string) error {
	if strings.Contains(e, "/") {
		pfx, err := netip.ParsePrefix(e)
		if err != nil {
			return fmt.Errorf("not a CIDR: %w", err)
		}
		pfx = pfx.Masked()
		if pfx.Addr().Is4In6() {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), max(pfx.Bits()-96, 0))
		}
		p.prefixes = append(p.prefixes, pfx)
		return nil
	}
	if ip, err := netip.ParseAddr(e); err == nil {
		if ip.Zone() != "" {
			return errors.New("an address with a zone cannot be allowed")
		}
		ip = ip.Unmap()
		p.prefixes = append(p.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
		return nil
	}
	name, wildcard := strings.CutPrefix(strings.ToLower(strings.TrimSuffix(e, ".")), "*.")
	if !validHostname(name) {
		return errors.New("not a CIDR, an IP address or a host name")
	}
	if wildcard {
		p.suffixes = append(p.suffixes, "."+name)
	} else {
		p.hosts = append(p.hosts, name)
	}
	return nil
}

// validHostname accepts letters, digits, '-', '_' and dots between
// non-empty labels of at most 63 bytes, 253 bytes in all, and rejects a
// name made of digits and dots only (a mistyped address).
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	letter := false
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			switch {
			case c >= 'a' && c <= 'z', c == '-', c == '_':
				letter = true
			case c >= '0' && c <= '9':
			default:
				return false
			}
		}
	}
	return letter
}

// String is the policy as an allow list Parse reads back.
func (p *Policy) String() string {
	if p == nil {
		return ""
	}
	var parts []string
	for _, pfx := range p.prefixes {
		if pfx.IsSingleIP() {
			parts = append(parts, pfx.Addr().String())
		} else {
			parts = append(parts, pfx.String())
		}
	}
	parts = append(parts, p.hosts...)
	for _, s := range p.suffixes {
		parts = append(parts, "*"+s)
	}
	return strings.Join(parts, ",")
}

// AllowsHost reports whether name was allowed by name: every address it
// resolves to may then be dialled.
func (p *Policy) AllowsHost(name string) bool {
	if p == nil {
		return false
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if slices.Contains(p.hosts, name) {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// Check returns nil when ip may be dialled, else a *RefusedError (which
// wraps ErrRefused) naming host, when given, in its message. An address is
// allowed when it or the IPv4 address it embeds is in an allowed range, or
// when neither is in a refused one.
func (p *Policy) Check(host string, ip netip.Addr) error {
	if !ip.IsValid() {
		return &RefusedError{Host: host, Addr: ip, Reason: "not a valid address"}
	}
	ip = ip.WithZone("")
	v4 := embedded(ip)
	if p != nil {
		for _, pfx := range p.deny {
			if pfx.Contains(ip) || pfx.Contains(v4) {
				return &RefusedError{Host: host, Addr: ip, Reason: "denied by the operator (--egress-deny)"}
			}
		}
		for _, pfx := range p.prefixes {
			if pfx.Contains(ip) || pfx.Contains(v4) {
				return nil
			}
		}
	}
	for _, d := range denied {
		if d.prefix.Contains(ip) || d.prefix.Contains(v4) {
			return &RefusedError{Host: host, Addr: ip, Reason: d.reason}
		}
	}
	// A public address of this very host reaches every service bound to
	// all interfaces (the platform, other runtimes, local daemons) as
	// surely as loopback does.
	if isLocal(ip) || isLocal(v4) {
		return &RefusedError{Host: host, Addr: ip, Reason: "an address of this host"}
	}
	return nil
}

// localAddrs lists the addresses of this host's interfaces; a variable so
// tests can pretend an address is local.
var localAddrs = func() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// isLocal reports whether ip is assigned to one of this host's interfaces,
// read afresh at each check so an address added later counts too.
func isLocal(ip netip.Addr) bool {
	ip = ip.Unmap()
	return slices.Contains(localAddrs(), ip)
}
