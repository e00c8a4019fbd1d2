package secrets

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/platform/store/sqlite"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestBoxRoundTrip(t *testing.T) {
	box, err := NewBox(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("sk-ant-very-secret")
	a := box.Seal(pt, []byte("aad"))
	b := box.Seal(pt, []byte("aad"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same value must differ (random nonce)")
	}
	if bytes.Contains(a, pt) {
		t.Fatal("ciphertext contains the plaintext")
	}
	got, err := box.Open(a, []byte("aad"))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := box.Open(a, []byte("other")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with another aad: %v, want ErrDecrypt", err)
	}
	other, _ := NewBox(testKey(2))
	if _, err := other.Open(a, []byte("aad")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with another key: %v, want ErrDecrypt", err)
	}
	for _, bad := range [][]byte{nil, {1}, append([]byte{9}, a[1:]...), a[:len(a)-1]} {
		if _, err := box.Open(bad, []byte("aad")); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Open(%x): %v, want ErrDecrypt", bad, err)
		}
	}
	if _, err := NewBox(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte key must be refused")
	}
}

func TestParseKey(t *testing.T) {
	k := testKey(0xab)
	for _, s := range []string{
		hex.EncodeToString(k), strings.ToUpper(hex.EncodeToString(k)),
		base64.StdEncoding.EncodeToString(k), base64.RawStdEncoding.EncodeToString(k),
		base64.URLEncoding.EncodeToString(k), " " + base64.StdEncoding.EncodeToString(k) + "\n",
	} {
		got, err := ParseKey(s)
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "short", hex.EncodeToString(k[:16]), base64.StdEncoding.EncodeToString(k[:31]), strings.Repeat("z", 64)} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) succeeded", s)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(hex.EncodeToString(testKey(1)))
	f.Add(base64.StdEncoding.EncodeToString(testKey(2)))
	f.Add("not a key")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err == nil && len(k) != KeySize {
			t.Fatalf("ParseKey(%q) returned %d bytes", s, len(k))
		}
	})
}

func noEnv(string) string { return "" }

func TestLoadKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, src, err := LoadKey(noEnv, dir, nil)
	if err != nil || len(k1) != KeySize || src != filepath.Join(dir, KeyFile) {
		t.Fatalf("first LoadKey = %x, %q, %v", k1, src, err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	k2, _, err := LoadKey(noEnv, dir, nil)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second LoadKey = %x, %v; want the same key", k2, err)
	}
	envKey := testKey(7)
	k3, src, err := LoadKey(func(n string) string {
		if n == KeyEnv {
			return hex.EncodeToString(envKey)
		}
		return ""
	}, dir, nil)
	if err != nil || !bytes.Equal(k3, envKey) || src != "$"+KeyEnv {
		t.Fatalf("env LoadKey = %x, %q, %v", k3, src, err)
	}
	if _, _, err := LoadKey(func(string) string { return "bad" }, dir, nil); err == nil {
		t.Fatal("a bad env key must be an error, not a fallback")
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, _, err := LoadKey(noEnv, dir, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v", err)
	}
}

func TestLoadKeyConcurrent(t *testing.T) {
	dir := t.TempDir()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _, err := LoadKey(noEnv, dir, nil)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent first starts created different keys")
		}
	}
}

func newService(t *testing.T, key byte) (*Service, *Box, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, _ := NewBox(testKey(key))
	var n atomic.Int64
	svc := NewService(st, box, func() time.Time { return time.Unix(1700000000, 0) }, func() string { return fmt.Sprintf("id%d", n.Add(1)) })
	return svc, box, st
}

func TestServiceEnv(t *testing.T) {
	ctx := context.Background()
	svc, _, st := newService(t, 1)
	st.CreateOrg(ctx, store.Org{ID: "o1", Name: "acme"})
	st.CreateScope(ctx, store.Scope{ID: "s1", OrgID: "o1", Name: "prod"})

	if _, created, err := svc.Put(ctx, "o1", "", "ORG_ONLY", "org-value"); err != nil || !created {
		t.Fatalf("Put = %v, %v", created, err)
	}
	if _, created, err := svc.Put(ctx, "o1", "", "ORG_ONLY", "org-value-2"); err != nil || created {
		t.Fatalf("Put update = %v, %v", created, err)
	}
	if _, _, err := svc.Put(ctx, "o1", "s1", "SCOPED", "scope-value"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "lower", "WITH-DASH", "SP ACE", strings.Repeat("A", MaxKeyLen+1)} {
		if _, _, err := svc.Put(ctx, "o1", "", bad, "v"); !errors.Is(err, ErrInvalid) {
			t.Errorf("Put key %q: %v, want ErrInvalid", bad, err)
		}
	}
	if _, _, err := svc.Put(ctx, "o1", "", "BIG", strings.Repeat("x", MaxValueLen+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized value: %v", err)
	}

	env, err := svc.Env(ctx, "o1", "")
	if err != nil || len(env) != 1 || env["ORG_ONLY"] != "org-value-2" {
		t.Fatalf("org env = %v, %v", env, err)
	}
	env, err = svc.Env(ctx, "o1", "s1")
	if err != nil || len(env) != 1 || env["SCOPED"] != "scope-value" {
		t.Fatalf("scope env = %v, %v; a scoped agent gets only its scope's secrets", env, err)
	}
	list, err := svc.List(ctx, "o1", "")
	if err != nil || len(list) != 1 || list[0].Ciphertext != nil {
		t.Fatalf("List = %+v, %v; want keys without ciphertext", list, err)
	}
	if got := Keys(map[string]string{"B": "x", "A": "y"}); fmt.Sprint(got) != "[A B]" {
		t.Fatalf("Keys = %v", got)
	}
}

func TestEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	svc, _, st := newService(t, 1)
	st.CreateOrg(ctx, store.Org{ID: "o1", Name: "acme"})
	const value = "sk-live-PLAINTEXT-MARKER"
	if _, _, err := svc.Put(ctx, "o1", "", "K", value); err != nil {
		t.Fatal(err)
	}
	raw, _ := st.ListSecrets(ctx, "o1", "")
	if len(raw) != 1 || bytes.Contains(raw[0].Ciphertext, []byte(value)) || raw[0].Ciphertext[0] != version {
		t.Fatalf("stored value is not sealed: %x", raw[0].Ciphertext)
	}
	// A sealed value moved to another key does not open.
	st.PutSecret(ctx, store.Secret{ID: "x", OrgID: "o1", Key: "OTHER", Ciphertext: raw[0].Ciphertext})
	if _, err := svc.Env(ctx, "o1", ""); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Env with a moved ciphertext: %v, want ErrDecrypt", err)
	}
}

func TestVerifyKey(t *testing.T) {
	ctx := context.Background()
	_, box, st := newService(t, 1)
	if err := VerifyKey(ctx, st, box); err != nil {
		t.Fatalf("first VerifyKey: %v", err)
	}
	if err := VerifyKey(ctx, st, box); err != nil {
		t.Fatalf("second VerifyKey: %v", err)
	}
	other, _ := NewBox(testKey(2))
	if err := VerifyKey(ctx, st, other); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("VerifyKey with another key: %v, want ErrKeyMismatch", err)
	}
}
