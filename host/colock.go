package host

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrCoDirInUse is returned by New when another host holds the same .co/
// directory: two hosts sharing its database and identity would mark each
// other's live runs interrupted and answer for each other.
var ErrCoDirInUse = errors.New("the .co directory is in use by another agenthost")

// lockFileName is the lock in the .co directory; it also says who holds it.
const lockFileName = "host.lock"

// coLock is an exclusive advisory lock (flock) on <co_dir>/host.lock, held
// for the Server's life. The kernel drops it when the process dies, so a
// crashed host never blocks the next one.
type coLock struct {
	mu   sync.Mutex
	f    *os.File
	addr string
}

// lockCoDir takes the lock, or fails with ErrCoDirInUse naming the holder's
// pid and address.
func lockCoDir(dir string) (*coLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who == "" {
				who = "another process"
			}
			return nil, fmt.Errorf("%w: %s holds %s; stop it, or run this one in another directory (each host needs a .co/ of its own)", ErrCoDirInUse, who, dir)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	l := &coLock{f: f}
	l.write()
	return l, nil
}

// listening records the address the host serves on, for the message a
// second host gets.
func (l *coLock) listening(addr net.Addr) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.addr = addr.String()
	l.mu.Unlock()
	l.write()
}

func (l *coLock) write() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return
	}
	who := "agenthost pid " + strconv.Itoa(os.Getpid())
	if l.addr != "" {
		who += " listening on " + l.addr
	}
	_ = l.f.Truncate(0)
	_, _ = l.f.WriteAt([]byte(who+"\n"), 0)
}

// release drops the lock.
func (l *coLock) release() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		_ = l.f.Truncate(0)
		l.f.Close() // closing the descriptor drops the flock
		l.f = nil
	}
}
