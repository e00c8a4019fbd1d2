package coding

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/agenthost/agenthost/internal/sandbox"
)

// WorkspacePath is where the model sees the workspace, whatever its
// directory on the host: the sandbox mounts it there, and the file tools
// accept absolute paths under it as paths in the workspace.
const WorkspacePath = sandbox.Workspace

type sessionKey struct{}

// WithSession marks ctx as belonging to a session, so bash runs in that
// session's sandbox (a sandbox and its background processes live as long
// as their session uses them).
func WithSession(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, sessionKey{}, id)
}

// SessionFrom returns the session WithSession put in ctx, or "".
func SessionFrom(ctx context.Context) string {
	id, _ := ctx.Value(sessionKey{}).(string)
	return id
}

// hostEnv is the environment of commands run without a sandbox when
// Options.BaseEnv is nil: built from nothing, as in the sandbox, but with
// the host's PATH and directories.
func hostEnv(workspace string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return []string{"PATH=" + path, "HOME=" + workspace, "LANG=C.UTF-8", "TMPDIR=" + os.TempDir(), "TERM=dumb"}
}

// errDiskLimit is the cause of a command killed for filling the disk.
var errDiskLimit = errors.New("the workspace exceeds its disk limit")

// diskGuard enforces the workspace's size cap: it measures the workspace
// while commands run (killing one that grows it past the cap) and refuses
// writes while it is over.
type diskGuard struct {
	root     string
	limit    int64
	interval time.Duration

	mu        sync.Mutex
	over      bool
	measuring bool // a measureLater is under way
}

func newDiskGuard(root string, limit int64, interval time.Duration) *diskGuard {
	if limit <= 0 {
		return nil
	}
	if interval <= 0 {
		interval = 2 * time.Second
	}
	return &diskGuard{root: root, limit: limit, interval: interval}
}

// usage is the workspace's size on disk: allocated blocks, each hard-linked
// file once.
func (g *diskGuard) usage() int64 {
	var total int64
	seen := map[[2]uint64]bool{}
	_ = filepath.WalkDir(g.root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished or unreadable: skip, keep counting
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			total += fi.Size()
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}

// measure updates and returns whether the workspace is over the cap.
func (g *diskGuard) measure() (int64, bool) {
	u := g.usage()
	g.mu.Lock()
	g.over = u > g.limit
	g.mu.Unlock()
	return u, u > g.limit
}

// measureLater measures in the background unless a measurement is
// already under way.
func (g *diskGuard) measureLater() {
	if g == nil {
		return
	}
	g.mu.Lock()
	if g.measuring {
		g.mu.Unlock()
		return
	}
	g.measuring = true
	g.mu.Unlock()
	go func() {
		g.measure()
		g.mu.Lock()
		g.measuring = false
		g.mu.Unlock()
	}()
}

func (g *diskGuard) knownOver() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.over
}

// refuse returns an error when the workspace is over its cap; a workspace
// known to be over is measured again, so deleting files lifts the refusal.
func (g *diskGuard) refuse() error {
	if g == nil || !g.knownOver() {
		return nil
	}
	if u, over := g.measure(); over {
		return fmt.Errorf("%w of %s (it holds %s): delete files before writing more", errDiskLimit, formatBytes(g.limit), formatBytes(u))
	}
	return nil
}

// watch measures the workspace every interval until the returned stop is
// called, and calls kill when it has grown past the cap (a command that
// shrinks an already full workspace is left alone).
func (g *diskGuard) watch(kill func(error)) (stop func()) {
	if g == nil {
		return func() {}
	}
	floor := g.limit
	if g.knownOver() {
		floor, _ = g.measure()
		floor = max(floor, g.limit)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		wait := g.interval
		for {
			t := time.NewTimer(wait)
			select {
			case <-done:
				t.Stop()
				return
			case <-t.C:
			}
			start := time.Now()
			if u, _ := g.measure(); u > floor {
				kill(errDiskLimit)
				return
			}
			// A large workspace is measured less often.
			wait = max(g.interval, 5*time.Since(start))
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// formatBytes shows n in bytes and, from a KiB on, in a binary unit.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%d bytes (%.1f %ciB)", n, float64(n)/float64(div), "KMGTPE"[exp])
}
