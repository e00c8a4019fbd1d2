package policy

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Contacts stores the level an operator or onboarding gave each address:
// LevelContact, LevelWhitelisted or LevelBlocked. A host backs it with its
// database so promotions survive restarts. Implementations receive
// lower-case addresses and must be safe for concurrent use.
type Contacts interface {
	// Level returns the stored level of addr, LevelStranger when none.
	Level(ctx context.Context, addr string) (Level, error)
	// SetLevel stores level for addr; LevelStranger removes the entry.
	SetLevel(ctx context.Context, addr string, level Level) error
}

// Contact is one stored address and its level.
type Contact struct {
	Address string `json:"address"`
	Level   Level  `json:"level"`
}

// MemoryContacts is an in-memory Contacts for tests.
type MemoryContacts struct {
	mu     sync.Mutex
	levels map[string]Level
}

// NewMemoryContacts returns an empty store.
func NewMemoryContacts() *MemoryContacts { return &MemoryContacts{levels: make(map[string]Level)} }

// Level implements Contacts.
func (c *MemoryContacts) Level(_ context.Context, addr string) (Level, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.levels[addr]; ok {
		return l, nil
	}
	return LevelStranger, nil
}

// SetLevel implements Contacts.
func (c *MemoryContacts) SetLevel(_ context.Context, addr string, level Level) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if level == LevelStranger || level == "" {
		delete(c.levels, addr)
	} else {
		c.levels[addr] = level
	}
	return nil
}

// List returns the stored contacts, sorted by address.
func (c *MemoryContacts) List() []Contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Contact, 0, len(c.levels))
	for a, l := range c.levels {
		out = append(out, Contact{Address: a, Level: l})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// History is what the judge knows of a caller's past: counts, never
// content.
type History struct {
	// Requests counts admitted requests; Denials refused ones.
	Requests  int64     `json:"requests"`
	Denials   int64     `json:"denials"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
}

// HistoryStore counts each caller's admitted and refused requests. Gate
// records every decision it makes; the judge reads the counts. Addresses
// are lower case; anonymous callers are recorded under "".
type HistoryStore interface {
	History(ctx context.Context, addr string) (History, error)
	Record(ctx context.Context, addr string, allowed bool, at time.Time) error
}

// MemoryHistory is an in-memory HistoryStore for tests.
type MemoryHistory struct {
	mu sync.Mutex
	h  map[string]History
}

// NewMemoryHistory returns an empty store.
func NewMemoryHistory() *MemoryHistory { return &MemoryHistory{h: make(map[string]History)} }

// History implements HistoryStore.
func (m *MemoryHistory) History(_ context.Context, addr string) (History, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.h[addr], nil
}

// Record implements HistoryStore.
func (m *MemoryHistory) Record(_ context.Context, addr string, allowed bool, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.h[addr]
	if allowed {
		h.Requests++
	} else {
		h.Denials++
	}
	if h.FirstSeen.IsZero() {
		h.FirstSeen = at
	}
	h.LastSeen = at
	m.h[addr] = h
	return nil
}
