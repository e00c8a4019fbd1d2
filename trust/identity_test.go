package trust

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityNeverPrintsKey(t *testing.T) {
	id := testIdentity(t, 9)
	seedHex := hex.EncodeToString(id.Seed())
	var logs bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&logs, nil))
	l.Info("x", "id", id, "value", *id)
	out := logs.String()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		out += fmt.Sprintf(verb, id) + fmt.Sprintf(verb, *id) + fmt.Sprintf(verb, []any{id})
	}
	if strings.Contains(out, seedHex[:16]) || strings.Contains(out, strings.Trim(fmt.Sprint(id.Seed()[:4]), "[]")) {
		t.Fatalf("key material printed: %s", out)
	}
	if !strings.Contains(out, id.Address()) {
		t.Errorf("address not printed: %s", out)
	}
}

func TestIdentityFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadIdentity(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadIdentity on empty dir: %v", err)
	}
	id, created, err := LoadOrCreateIdentity(dir)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Fatalf("key file: %v %v", st, err)
	}
	again, created, err := LoadOrCreateIdentity(dir)
	if err != nil || created || again.Address() != id.Address() {
		t.Fatalf("reload: %v %v %v", again, created, err)
	}
	if err := SaveIdentity(dir, id); err != nil {
		t.Errorf("saving the same key again: %v", err)
	}
	if err := SaveIdentity(dir, testIdentity(t, 3)); err == nil {
		t.Error("overwrote a different key")
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(dir); err == nil {
		t.Error("short key accepted")
	}
}

func TestParseAddress(t *testing.T) {
	id := testIdentity(t, 4)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{id.Address(), true},
		{"0X" + strings.ToUpper(id.Address()[2:]), true},
		{id.Address()[2:], false},
		{id.Address()[:65], false},
		{"0x" + strings.Repeat("g", 64), false},
		{"", false},
	} {
		pub, err := ParseAddress(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("ParseAddress(%q): %v", tc.in, err)
		}
		if tc.ok && !bytes.Equal(pub, id.PublicKey()) {
			t.Errorf("ParseAddress(%q) = wrong key", tc.in)
		}
		if !tc.ok && !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseAddress(%q) error %v is not ErrBadAddress", tc.in, err)
		}
	}
	if n, err := NormalizeAddress(strings.ToUpper(id.Address())); err != nil || n != id.Address() {
		t.Errorf("NormalizeAddress(upper case) = %q, %v", n, err)
	}
}
