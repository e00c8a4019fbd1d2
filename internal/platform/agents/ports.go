package agents

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
)

// PortRange is the inclusive range of loopback ports runtimes are given.
type PortRange struct{ Min, Max int }

// DefaultPorts is below Linux's ephemeral range (32768–60999), so outgoing
// connections never hold a port a runtime needs.
var DefaultPorts = PortRange{Min: 20000, Max: 20999}

// ParsePortRange parses "MIN-MAX".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return PortRange{}, fmt.Errorf("port range %q: want MIN-MAX within 1-65535", s)
	}
	return PortRange{Min: a, Max: b}, nil
}

// ErrNoPorts means every port of the range is taken.
var ErrNoPorts = errors.New("no available ports; retry later")

// PortPool hands out loopback ports to agents. A port is free only when the
// pool has not given it to another agent and nobody listens on it, so a
// runtime never races a foreign server for its port. Each agent holds at
// most one port, and the number of holders is the number of runtimes this
// platform process keeps running.
type PortPool struct {
	r     PortRange
	probe func(port int) bool

	mu     sync.Mutex
	owner  map[int]string // port → agent
	byID   map[string]int // agent → port
	cursor int            // next port to try, so freed ports are not reused at once
}

// NewPortPool returns a pool over r. probe reports whether a port is free
// on the host; nil means "nobody listens on 127.0.0.1:port".
func NewPortPool(r PortRange, probe func(int) bool) *PortPool {
	if probe == nil {
		probe = loopbackFree
	}
	return &PortPool{r: r, probe: probe, owner: map[int]string{}, byID: map[string]int{}, cursor: r.Min}
}

func loopbackFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// Reserve gives id a free port, preferring the one it holds or prefer when
// free. It is ErrNoPorts when the range is exhausted.
func (p *PortPool) Reserve(id string, prefer int) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if held, ok := p.byID[id]; ok {
		if p.probe(held) {
			return held, nil
		}
		p.drop(id)
	}
	if prefer >= p.r.Min && prefer <= p.r.Max {
		if _, taken := p.owner[prefer]; !taken && p.probe(prefer) {
			p.take(id, prefer)
			return prefer, nil
		}
	}
	n := p.r.Max - p.r.Min + 1
	for i := 0; i < n; i++ {
		port := p.r.Min + (p.cursor-p.r.Min+i)%n
		if _, taken := p.owner[port]; taken || !p.probe(port) {
			continue
		}
		p.take(id, port)
		p.cursor = port + 1
		return port, nil
	}
	return 0, ErrNoPorts
}

// Claim records that id holds port without probing it: a recovered runtime
// is listening on it already.
func (p *PortPool) Claim(id string, port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop(id)
	if other, ok := p.owner[port]; ok {
		delete(p.byID, other)
	}
	p.take(id, port)
}

// Release frees id's port, if it holds one.
func (p *PortPool) Release(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop(id)
}

// Holds reports whether id holds a port.
func (p *PortPool) Holds(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.byID[id]
	return ok
}

// Len is the number of agents holding a port.
func (p *PortPool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byID)
}

func (p *PortPool) take(id string, port int) {
	p.owner[port] = id
	p.byID[id] = port
}

func (p *PortPool) drop(id string) {
	if port, ok := p.byID[id]; ok {
		delete(p.owner, port)
		delete(p.byID, id)
	}
}
