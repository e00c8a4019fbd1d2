// Package secrets keeps the platform's secrets encrypted at rest: AES-256-GCM
// under one master key that comes from the environment (AGENTHOST_MASTER_KEY)
// or from a key file in the data directory created on first start. Service
// stores, lists and deletes an organization's secrets and resolves the
// environment an agent's runtime starts with; values leave it only through
// Env, never through a listing.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// KeyEnv is the environment variable holding the master key, base64 or hex
// of 32 bytes. Replicas sharing a PostgreSQL database must all be given the
// same key this way.
const KeyEnv = "AGENTHOST_MASTER_KEY"

// KeyFile is the name of the key file in the data directory, used when
// KeyEnv is unset.
const KeyFile = "master.key"

// KeySize is the master key's length: AES-256.
const KeySize = 32

// version is the first byte of every sealed value, so the format (and a
// future key rotation) can change without guessing.
const version = 1

// ErrDecrypt means a sealed value could not be opened: the wrong master
// key, or a value that was tampered with or moved to another row.
var ErrDecrypt = errors.New("cannot decrypt: wrong master key or corrupted value")

// Box seals and opens values under the master key.
type Box struct{ aead cipher.AEAD }

// NewBox returns a Box for a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("master key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext. aad binds the ciphertext to its owner (an
// organization and key, an agent): the same ciphertext copied to another
// row does not open.
func (b *Box) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("secrets: crypto/rand failed: " + err.Error())
	}
	out := append([]byte{version}, nonce...)
	return b.aead.Seal(out, nonce, plaintext, aad)
}

// Open decrypts a value made by Seal with the same aad.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrDecrypt
	}
	pt, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// ParseKey decodes a master key written as hex or base64 (standard or URL
// alphabet, padded or not).
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("master key decodes to %d bytes, want %d", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("master key is neither hex nor base64 of %d bytes", KeySize)
}

// LoadKey returns the master key from KeyEnv or, when that is unset, from
// dataDir/KeyFile, creating the file (mode 0600) with a fresh random key on
// first start. A key file others can read is refused. source says where the
// key came from, for the start-up log (never the key itself).
func LoadKey(getenv func(string) string, dataDir string, log *slog.Logger) (key []byte, source string, err error) {
	if v := getenv(KeyEnv); v != "" {
		k, err := ParseKey(v)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", KeyEnv, err)
		}
		return k, "$" + KeyEnv, nil
	}
	path := filepath.Join(dataDir, KeyFile)
	k, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err = createKeyFile(path)
		if err == nil && log != nil {
			log.Info("created a new master key; back it up: without it the secrets in the database cannot be read", "file", path)
		}
	}
	if err != nil {
		return nil, "", err
	}
	return k, path, nil
}

func readKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s is readable by others (mode %04o); run chmod 600 on it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return k, nil
}

// createKeyFile writes a new key to a temporary file and links it into
// place, so two processes starting at once cannot both create one and
// neither reads a half-written file: the loser reads the winner's.
func createKeyFile(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".master.key-*")
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKeyFile(path)
		}
		return nil, fmt.Errorf("master key: %w", err)
	}
	return k, nil
}
