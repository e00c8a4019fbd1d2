package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// Resolver looks names up; *net.Resolver is one. Tests give their own to
// play DNS tricks.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer opens TCP connections the policy allows. A name is resolved once;
// every address it resolves to must pass the policy (one refused address
// refuses the name: a name that also points inside is not public), and the
// connection goes to an address that was checked, never to a fresh lookup,
// so a DNS answer that changes between check and use (DNS rebinding) cannot
// slip through. The socket's address is checked once more just before
// connect. The zero value uses the default policy and resolver.
type Dialer struct {
	// Policy is what may be reached beyond the public internet; nil allows
	// only the public internet.
	Policy *Policy
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver
	// Timeout bounds one connection attempt (default 30s).
	Timeout time.Duration
}

// DialContext connects to address ("host:port") over network ("tcp",
// "tcp4" or "tcp6"). A refusal wraps ErrRefused; other errors are the
// network's.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("egress: %s connections are not supported: %w", network, ErrRefused)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		if port, err = lookupPort(ctx, network, portStr); err != nil {
			return nil, fmt.Errorf("egress: port %q: %w", portStr, err)
		}
	}
	addrs, byName, err := d.resolve(ctx, network, host)
	if err != nil {
		return nil, err
	}
	nd := net.Dialer{Timeout: d.Timeout}
	if nd.Timeout <= 0 {
		nd.Timeout = 30 * time.Second
	}
	// The last word: the address the socket is about to connect to.
	nd.ControlContext = func(_ context.Context, _, sockAddr string, _ syscall.RawConn) error {
		if byName {
			return nil
		}
		ap, err := netip.ParseAddrPort(sockAddr)
		if err != nil {
			return fmt.Errorf("egress: connecting to %q: %w", sockAddr, ErrRefused)
		}
		return d.Policy.Check(host, ap.Addr())
	}
	var errs []error
	for _, ip := range addrs {
		c, err := nd.DialContext(ctx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("egress: dial %s: %w", address, errors.Join(errs...))
}

func lookupPort(ctx context.Context, network, service string) (uint64, error) {
	p, err := net.DefaultResolver.LookupPort(ctx, network, service)
	return uint64(p), err
}

// resolve returns the addresses to dial for host, all checked; byName is
// set when the host was allowed by name (its addresses are not checked).
func (d *Dialer) resolve(ctx context.Context, network, host string) (addrs []netip.Addr, byName bool, err error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := d.Policy.Check("", ip); err != nil {
			return nil, false, err
		}
		return []netip.Addr{ip}, false, nil
	}
	var r Resolver = net.DefaultResolver
	if d.Resolver != nil {
		r = d.Resolver
	}
	ipNet := "ip"
	switch network {
	case "tcp4":
		ipNet = "ip4"
	case "tcp6":
		ipNet = "ip6"
	}
	found, err := r.LookupNetIP(ctx, ipNet, host)
	if err != nil {
		return nil, false, fmt.Errorf("egress: resolving %s: %w", host, err)
	}
	if len(found) == 0 {
		return nil, false, fmt.Errorf("egress: %s has no address", host)
	}
	if d.Policy.AllowsHost(host) {
		return found, true, nil
	}
	for _, ip := range found {
		if err := d.Policy.Check(host, ip); err != nil {
			return nil, false, err
		}
	}
	return found, false, nil
}
