package runtime

import (
	"sync"
	"testing"
)

func TestIDLocks(t *testing.T) {
	var l IDLocks
	var mu sync.Mutex
	inside := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		id := []string{"a", "b", "c"}[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := l.Lock(id)
			defer unlock()
			mu.Lock()
			inside[id]++
			if inside[id] != 1 {
				t.Errorf("%d holders of %s at once", inside[id], id)
			}
			mu.Unlock()
			mu.Lock()
			inside[id]--
			mu.Unlock()
		}()
	}
	wg.Wait()
	if n := l.held(); n != 0 {
		t.Fatalf("%d entries left after every unlock", n)
	}
	// Different ids do not wait for each other.
	ua := l.Lock("a")
	ub := l.Lock("b")
	ub()
	ua()
}

// held reports how many ids have holders or waiters (for tests).
func (l *IDLocks) held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
