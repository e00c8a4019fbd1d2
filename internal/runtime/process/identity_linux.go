//go:build linux

package process

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// identity is the uid and gid a runtime runs as, recorded in its
// directory so that it keeps them across stop and start.
type identity struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

const (
	identityName = "identity.json"
	// uidsName records the next uid to allocate; uidsLockName serializes
	// allocations, also between platform processes on the same root.
	uidsName     = ".uids"
	uidsLockName = ".uids.lock"
	// binName holds the runtime executables copied where runtime uids can
	// run them.
	binName = ".bin"
)

// identities allocates runtime identities from a range, monotonically:
// a uid once given is never given again under this root, not even after
// its runtime is destroyed, so no file or process a runtime left behind
// can ever belong to another runtime.
type identities struct {
	root  string
	first uint32 // probe uid: never allocated
	last  uint32
	mu    sync.Mutex
}

// of returns id's identity, allocating one on its first start.
func (a *identities) of(id string) (identity, error) {
	path := filepath.Join(a.root, id, identityName)
	if b, err := os.ReadFile(path); err == nil {
		var ident identity
		if err := json.Unmarshal(b, &ident); err != nil || ident.UID <= a.first || ident.UID > a.last {
			return identity{}, fmt.Errorf("%s: uid %d is not in the range %d-%d (or the file is damaged); destroy the runtime or restore the range", path, ident.UID, a.first, a.last)
		}
		return ident, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return identity{}, err
	}
	uid, err := a.allocate()
	if err != nil {
		return identity{}, err
	}
	ident := identity{UID: uid, GID: uid}
	b, _ := json.Marshal(ident)
	if err := writeFileSync(path, b, 0o600); err != nil {
		return identity{}, err
	}
	return ident, nil
}

// allocate takes the next uid of the range and records it durably before
// returning it.
func (a *identities) allocate() (uint32, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lock, err := os.OpenFile(filepath.Join(a.root, uidsLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("uid allocation: %w", err)
	}
	defer lock.Close()
	for {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("uid allocation: lock: %w", err)
	}
	next := a.first + 1
	b, err := os.ReadFile(filepath.Join(a.root, uidsName))
	switch {
	case err == nil:
		var rec struct{ Next uint32 }
		if err := json.Unmarshal(b, &rec); err != nil {
			return 0, fmt.Errorf("uid allocation: %s is damaged (%v); set it to {\"next\": N} with N above every uid in use", filepath.Join(a.root, uidsName), err)
		}
		next = max(next, rec.Next)
	case errors.Is(err, fs.ErrNotExist):
		// A root without a record (new, or the record was lost): never
		// go below what the runtimes' own records say.
		next = max(next, a.highestRecorded()+1)
	default:
		return 0, fmt.Errorf("uid allocation: %w", err)
	}
	if next > a.last || next < a.first {
		return 0, fmt.Errorf("uid allocation: the range %d-%d is used up; give the platform a new range (--runtime-uids)", a.first, a.last)
	}
	rec, _ := json.Marshal(map[string]uint32{"next": next + 1})
	if err := writeFileSync(filepath.Join(a.root, uidsName), rec, 0o600); err != nil {
		return 0, fmt.Errorf("uid allocation: %w", err)
	}
	return next, nil
}

// highestRecorded is the highest uid in the runtimes' identity files.
func (a *identities) highestRecorded() uint32 {
	ents, _ := os.ReadDir(a.root)
	var hi uint32
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(a.root, e.Name(), identityName))
		if err != nil {
			continue
		}
		var ident identity
		if json.Unmarshal(b, &ident) == nil {
			hi = max(hi, ident.UID)
		}
	}
	return hi
}

// writeFileSync writes path atomically and durably: a temporary file,
// fsync, rename, fsync of the directory.
func writeFileSync(path string, b []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ownDir makes dir (created if needed) the runtime's: owned by ident,
// mode 0700. A directory owned by someone else (a workspace from before
// runtimes had their own uids, or from a runtime whose identity record
// was lost) is handed over whole; symbolic links are never followed.
func ownDir(dir string, ident identity) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != ident.UID || st.Gid != ident.GID {
		err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, int(ident.UID), int(ident.GID))
		})
		if err != nil {
			return fmt.Errorf("handing %s to uid %d: %w", dir, ident.UID, err)
		}
	}
	if fi.Mode().Perm() != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// checkTraversable returns an error naming the first directory on the way
// to dir (dir excluded) that users other than its owner cannot traverse,
// and how to fix it: a runtime's uid must be able to reach its directory
// under the root.
func checkTraversable(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	var blocked []string
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			blocked = append(blocked, fmt.Sprintf("%s (mode %04o)", p, fi.Mode().Perm()))
		}
		if p == "/" {
			break
		}
	}
	if len(blocked) == 0 {
		return nil
	}
	for i, j := 0, len(blocked)-1; i < j; i, j = i+1, j-1 {
		blocked[i], blocked[j] = blocked[j], blocked[i]
	}
	return fmt.Errorf("%w: runtimes run under their own uids and must reach %s, but other users cannot traverse %s; "+
		"make them traversable (chmod o+x on each: nothing becomes listable or readable) or put the data directory elsewhere (e.g. --data /var/lib/agenthost)",
		ErrUntraversable, dir, strings.Join(blocked, ", "))
}

// ErrUntraversable: the runtimes' uids cannot reach the driver's root.
var ErrUntraversable = errors.New("process: runtime directory unreachable for runtime users")

// executables copies runtime binaries into <root>/.bin, where every
// runtime uid may run them (the binary the platform was given may live in
// /root or in a 0700 temporary directory). Copies are named by their
// content's hash, so a binary replaced in place (an upgrade) gets a new
// copy and running runtimes keep theirs.
type executables struct {
	dir   string
	mu    sync.Mutex
	known map[fileKey]string // source file → its copy
}

// fileKey identifies one version of a file without reading it.
type fileKey struct {
	dev, ino uint64
	size     int64
	mtime    int64
	path     string
}

func keyOf(path string, fi fs.FileInfo) fileKey {
	st := fi.Sys().(*syscall.Stat_t)
	return fileKey{dev: uint64(st.Dev), ino: st.Ino, size: fi.Size(), mtime: fi.ModTime().UnixNano(), path: path}
}

// copyOf returns the path of src's copy, making it on first use.
func (e *executables) copyOf(src string) (string, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	k := keyOf(src, fi)
	e.mu.Lock()
	dst, ok := e.known[k]
	e.mu.Unlock()
	if ok {
		if _, err := os.Stat(dst); err == nil {
			return dst, nil
		}
	}
	dst, err = e.copy(src)
	if err != nil {
		return "", fmt.Errorf("copying %s where runtime users can run it: %w", src, err)
	}
	e.mu.Lock()
	e.known[k] = dst
	e.mu.Unlock()
	return dst, nil
}

func (e *executables) copy(src string) (string, error) {
	if err := os.MkdirAll(e.dir, 0o711); err != nil {
		return "", err
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	// No fork may happen while the copy is open for writing: a child
	// forked meanwhile holds the descriptor until its own exec, and any
	// exec of the copy in that window fails with ETXTBSY — also one done
	// by prlimit on the runtime's behalf, where startCmd's retry cannot
	// see it (golang.org/issue/22315). Forks take ForkLock for writing.
	h := sha256.New()
	syscall.ForkLock.RLock()
	tmp, err := os.CreateTemp(e.dir, ".copy-*")
	if err != nil {
		syscall.ForkLock.RUnlock()
		return "", err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(io.MultiWriter(tmp, h), in)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	syscall.ForkLock.RUnlock()
	if err == nil {
		err = syncFile(tmp.Name())
	}
	if err != nil {
		return "", err
	}
	dst := filepath.Join(e.dir, hex.EncodeToString(h.Sum(nil))[:32]+"-"+filepath.Base(src))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	return dst, os.Rename(tmp.Name(), dst)
}

// prune removes copies that no recorded run uses and that are older than
// an hour (a Start in progress may not have recorded its run yet).
func (e *executables) prune(inUse map[string]bool, now time.Time) {
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		return
	}
	for _, ent := range ents {
		p := filepath.Join(e.dir, ent.Name())
		fi, err := ent.Info()
		if err != nil || inUse[p] || now.Sub(fi.ModTime()) < time.Hour {
			continue
		}
		os.Remove(p)
	}
}

// syncFile flushes path's contents to disk through a read-only
// descriptor.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
