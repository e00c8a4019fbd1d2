package runtime

import "sync"

// IDLocks serializes the operations of a driver on one runtime id (start,
// destroy, re-attachment) while letting different ids proceed in
// parallel. Entries live only while someone holds or waits for them, so a
// driver that sees many ids over its life keeps no garbage. The zero value
// is ready to use.
type IDLocks struct {
	mu sync.Mutex
	m  map[string]*idLock
}

type idLock struct {
	mu   sync.Mutex
	refs int // holders and waiters
}

// Lock locks id and returns the function that unlocks it.
func (l *IDLocks) Lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*idLock{}
	}
	e := l.m[id]
	if e == nil {
		e = &idLock{}
		l.m[id] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}
