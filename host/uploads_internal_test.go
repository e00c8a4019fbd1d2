package host

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUploadQuotaAndExpiry: uploads count against a per-caller quota and
// are deleted result_ttl after they were made. On the old code a caller
// could fill the disk (no quota) and uploads were never deleted.
func TestUploadQuotaAndExpiry(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	clock := func() time.Time { return now }
	cfg := &Config{CoDir: dir, MaxFileSizeMB: 1, MaxFilesPerRequest: 5, UploadQuotaMB: 0.05, ResultTTL: time.Hour}
	file := func(n int) []fileInput {
		return []fileInput{{Name: "f.txt", Data: "data:text/plain;base64," + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", n)))}}
	}
	alice := uploadOwner{caller: Caller{Address: "0xalice"}}
	bob := uploadOwner{caller: Caller{Address: "0xbob"}}
	if _, err := attachments(cfg, nil, file(30<<10), alice, clock); err != nil {
		t.Fatal(err)
	}
	_, err := attachments(cfg, nil, file(30<<10), alice, clock)
	if status, msg, _ := classify(err); status != 413 || !strings.Contains(msg, "quota") {
		t.Fatalf("over the quota: %v", err)
	}
	if _, err := attachments(cfg, nil, file(30<<10), bob, clock); err != nil {
		t.Fatalf("another caller's quota: %v", err)
	}
	// Anonymous callers are counted per IP.
	anon1 := uploadOwner{remote: "192.0.2.1:1000"}
	anon2 := uploadOwner{remote: "192.0.2.2:1000"}
	if _, err := attachments(cfg, nil, file(30<<10), anon1, clock); err != nil {
		t.Fatal(err)
	}
	if _, err := attachments(cfg, nil, file(30<<10), anon2, clock); err != nil {
		t.Fatalf("another IP: %v", err)
	}
	count := func() int {
		n := 0
		filepath.WalkDir(filepath.Join(dir, "uploads"), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	if n := count(); n != 4 {
		t.Fatalf("%d files stored", n)
	}
	now = now.Add(30 * time.Minute)
	sweepUploads(cfg, now, nil)
	if n := count(); n != 4 {
		t.Fatalf("files deleted before their TTL: %d left", n)
	}
	now = now.Add(31 * time.Minute)
	sweepUploads(cfg, now, nil)
	if n := count(); n != 0 {
		t.Fatalf("%d files kept past the TTL", n)
	}
	// The quota is free again.
	if _, err := attachments(cfg, nil, file(30<<10), alice, clock); err != nil {
		t.Fatal(err)
	}
}
