package host

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Uploads are files callers attach to their prompts. They are written
// only for admitted requests, under <co_dir>/uploads/<caller>/ — a signed
// caller's directory is named after its address, anonymous callers'
// after their IP — within a per-caller quota (upload_quota_mb), and each
// is deleted result_ttl after it was made, by the sweeper that deletes
// expired sessions.

// uploadOwner is who an upload counts against.
type uploadOwner struct {
	caller Caller
	remote string // the client's address, for anonymous callers
}

// dir is the owner's directory name: a hash, so it says nothing itself.
func (o uploadOwner) dir() string {
	key := "addr:" + o.caller.Address
	if o.caller.Address == "" {
		key = "ip:" + hostOf(o.remote)
	}
	sum := sha256.Sum256([]byte(key))
	prefix := "a-"
	if o.caller.Address == "" {
		prefix = "ip-"
	}
	return prefix + hex.EncodeToString(sum[:8])
}

// uploadsDirOf is the directory of owner's uploads.
func uploadsDirOf(cfg *Config, owner uploadOwner) string {
	return filepath.Join(cfg.CoDir, "uploads", owner.dir())
}

var uploadLocks sync.Map // dir → *sync.Mutex

// lockUploads serializes the quota check and writes of one owner.
func lockUploads(dir string) func() {
	m, _ := uploadLocks.LoadOrStore(dir, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// checkQuota refuses adding n bytes to dir past the quota.
func checkQuota(cfg *Config, dir string, n int64) error {
	quota := int64(cfg.UploadQuotaMB * (1 << 20))
	if quota <= 0 {
		return nil
	}
	var used int64
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("uploads: %w", err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			used += info.Size()
		}
	}
	if used+n > quota {
		return errorf(http.StatusRequestEntityTooLarge, "upload quota exceeded: %s of your files are stored and the quota is %s per caller; uploads are deleted %s after they were made",
			sizeString(used), sizeString(quota), cfg.ResultTTL)
	}
	return nil
}

// sweepUploads deletes uploads older than the result TTL at now, and
// empty owner directories.
func sweepUploads(cfg *Config, now time.Time, log *slog.Logger) {
	root := filepath.Join(cfg.CoDir, "uploads")
	owners, err := os.ReadDir(root)
	if err != nil {
		return
	}
	cutoff := now.Add(-cfg.ResultTTL)
	for _, o := range owners {
		if !o.IsDir() {
			// A file from before per-caller directories.
			if info, err := o.Info(); err == nil && info.ModTime().Before(cutoff) {
				os.Remove(filepath.Join(root, o.Name()))
			}
			continue
		}
		dir := filepath.Join(root, o.Name())
		unlock := lockUploads(dir)
		files, _ := os.ReadDir(dir)
		left := 0
		for _, f := range files {
			info, err := f.Info()
			if err == nil && info.ModTime().Before(cutoff) {
				if err := os.Remove(filepath.Join(dir, f.Name())); err != nil && log != nil {
					log.Warn("deleting an expired upload", "err", err)
				}
				continue
			}
			left++
		}
		if left == 0 {
			os.Remove(dir)
		}
		unlock()
	}
}
