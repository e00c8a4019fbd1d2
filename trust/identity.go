// Package trust proves who is talking: Ed25519 identities and their 0x
// addresses, the canonical JSON that signatures cover, signed envelopes,
// signed headers and announcements, and their verification (signature,
// time window, recipient, payload digest, single use).
//
// It is what clients and relays need, and it links no model, YAML parser
// or rate limiter. Deciding who may talk — trust levels, access lists,
// contacts, onboarding, the judge of a natural-language policy and admin
// operations — is in trust/policy, which hosts use.
package trust

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// KeyFile is where an identity's 32-byte seed lives, relative to a .co
// directory.
const KeyFile = "keys/agent.key"

// Identity is an Ed25519 key pair. Its String method prints the address, never
// the key, so an Identity can be logged safely.
type Identity struct {
	priv ed25519.PrivateKey
	addr string
}

// NewIdentity generates a fresh identity.
func NewIdentity() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	return fromPrivate(priv), nil
}

// IdentityFromSeed returns the identity of a 32-byte Ed25519 seed.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("key seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return fromPrivate(ed25519.NewKeyFromSeed(seed)), nil
}

func fromPrivate(priv ed25519.PrivateKey) *Identity {
	return &Identity{priv: priv, addr: AddressOf(priv.Public().(ed25519.PublicKey))}
}

// AddressOf returns the address of a public key: "0x" and 64 lowercase hex
// characters.
func AddressOf(pub ed25519.PublicKey) string { return "0x" + hex.EncodeToString(pub) }

// Address returns the identity's address.
func (id *Identity) Address() string { return id.addr }

// PublicKey returns the public key.
func (id *Identity) PublicKey() ed25519.PublicKey { return id.priv.Public().(ed25519.PublicKey) }

// Seed returns the 32-byte private seed. Handle with care.
func (id *Identity) Seed() []byte { return id.priv.Seed() }

// Sign signs msg.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.priv, msg) }

// String returns the address; keys are never printed. It has a value
// receiver so that printing an Identity value (not only a pointer) is safe.
func (id Identity) String() string { return id.addr }

// GoString returns the address too, so %#v does not print the key.
func (id Identity) GoString() string { return "trust.Identity(" + id.addr + ")" }

// Format prints the address for every verb, so no fmt verb (%x, %+v, …)
// reaches the key bytes.
func (id Identity) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, id.GoString())
		return
	}
	_, _ = io.WriteString(f, id.addr)
}

// LogValue makes slog log the address.
func (id Identity) LogValue() slog.Value { return slog.StringValue(id.addr) }

// ParseAddress checks an address and returns its public key. Upper-case hex
// is accepted; addresses compare equal case-insensitively.
func ParseAddress(addr string) (ed25519.PublicKey, error) {
	h, ok := strings.CutPrefix(addr, "0x")
	if !ok {
		h, ok = strings.CutPrefix(addr, "0X")
	}
	if !ok || len(h) != 2*ed25519.PublicKeySize {
		return nil, fmt.Errorf("address %q: want 0x and 64 hex characters: %w", clipAddr(addr), ErrBadAddress)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", clipAddr(addr), ErrBadAddress)
	}
	return ed25519.PublicKey(b), nil
}

// NormalizeAddress returns addr in lower case, or an error if it is not an
// address.
func NormalizeAddress(addr string) (string, error) {
	pub, err := ParseAddress(addr)
	if err != nil {
		return "", err
	}
	return AddressOf(pub), nil
}

// ErrBadAddress is returned for strings that are not addresses.
var ErrBadAddress = errors.New("malformed address")

func clipAddr(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// LoadIdentity reads the identity stored under coDir (coDir/keys/agent.key).
// It returns an error wrapping fs.ErrNotExist when there is none.
func LoadIdentity(coDir string) (*Identity, error) {
	path := filepath.Join(coDir, KeyFile)
	seed, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading identity: %w", err)
	}
	id, err := IdentityFromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	return id, nil
}

// LoadOrCreateIdentity returns the identity under coDir, generating and
// saving one (mode 0600) on first use. created reports a new identity.
func LoadOrCreateIdentity(coDir string) (id *Identity, created bool, err error) {
	id, err = LoadIdentity(coDir)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	id, err = NewIdentity()
	if err != nil {
		return nil, false, err
	}
	if err := SaveIdentity(coDir, id); err != nil {
		return nil, false, err
	}
	return id, true, nil
}

// SaveIdentity writes id under coDir with mode 0600, atomically, refusing to
// overwrite a different existing key.
func SaveIdentity(coDir string, id *Identity) error {
	path := filepath.Join(coDir, KeyFile)
	if old, err := LoadIdentity(coDir); err == nil {
		if old.Address() == id.Address() {
			return nil
		}
		return fmt.Errorf("identity %s already holds %s; remove it first to replace it", path, old.Address())
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".agent.key-*")
	if err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("saving identity: %w", err)
	}
	if _, err := tmp.Write(id.Seed()); err != nil {
		tmp.Close()
		return fmt.Errorf("saving identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	return nil
}
