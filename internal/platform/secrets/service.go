package secrets

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/agenthost/agenthost/internal/platform/store"
)

// Limits on keys and values. A value becomes an environment variable, and
// Linux refuses a single one over 128 KiB at exec.
const (
	MaxKeyLen   = 256
	MaxValueLen = 64 << 10
)

// ErrInvalid is wrapped by errors about a key or value the caller must fix.
var ErrInvalid = errors.New("invalid secret")

var keyRE = regexp.MustCompile(`^[A-Z0-9_]+$`)

// CheckKey reports whether key may name a secret: uppercase letters,
// digits and underscores, as environment variables are written, and not a
// reserved name (see Reserved).
func CheckKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: key is required", ErrInvalid)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key is longer than %d characters", ErrInvalid, MaxKeyLen)
	case !keyRE.MatchString(key):
		return fmt.Errorf("%w: key must match ^[A-Z0-9_]+$ (uppercase letters, digits and underscores)", ErrInvalid)
	}
	return checkReserved(key)
}

// CheckValue reports whether value may be stored.
func CheckValue(value string) error {
	if len(value) > MaxValueLen {
		return fmt.Errorf("%w: value is longer than %d bytes", ErrInvalid, MaxValueLen)
	}
	return nil
}

// checkMeta is the meta row holding a value sealed under the master key,
// so that a process started with a different key notices at once instead
// of failing on the first secret it reads.
const checkMeta = "master_key_check"

var checkPlain = []byte("agenthost master key check")

// ErrKeyMismatch: the database's secrets were sealed under another key.
var ErrKeyMismatch = errors.New("the master key does not match the one this database was created with")

// VerifyKey checks box against the database, recording a check value on
// first use.
func VerifyKey(ctx context.Context, st store.Store, box *Box) error {
	sealed := box.Seal(checkPlain, []byte(checkMeta))
	got, err := st.InitMeta(ctx, checkMeta, hex.EncodeToString(sealed))
	if err != nil {
		return fmt.Errorf("master key check: %w", err)
	}
	raw, err := hex.DecodeString(got)
	if err != nil {
		return fmt.Errorf("master key check: %w", ErrKeyMismatch)
	}
	if _, err := box.Open(raw, []byte(checkMeta)); err != nil {
		return ErrKeyMismatch
	}
	return nil
}

// Service is an organization's secrets, encrypted under a Box.
type Service struct {
	st    store.Store
	box   *Box
	now   func() time.Time
	newID func() string
}

// NewService returns a Service. now and newID are the clock and id seams.
func NewService(st store.Store, box *Box, now func() time.Time, newID func() string) *Service {
	return &Service{st: st, box: box, now: now, newID: newID}
}

// aad ties a secret's ciphertext to its organization and key. The scope is
// left out on purpose: deleting a scope moves its secrets to org level.
func aad(orgID, key string) []byte { return []byte("secret\x00" + orgID + "\x00" + key) }

// Put creates or replaces a secret; scopeID empty means org-level. A scope
// that is not the organization's is store.ErrNotFound.
func (s *Service) Put(ctx context.Context, orgID, scopeID, key, value string) (store.Secret, bool, error) {
	if err := CheckKey(key); err != nil {
		return store.Secret{}, false, err
	}
	if err := CheckValue(value); err != nil {
		return store.Secret{}, false, err
	}
	now := s.now()
	return s.st.PutSecret(ctx, store.Secret{
		ID: s.newID(), OrgID: orgID, ScopeID: scopeID, Key: key,
		Ciphertext: s.box.Seal([]byte(value), aad(orgID, key)),
		CreatedAt:  now, UpdatedAt: now,
	})
}

// List lists the keys of one scope's secrets (org-level when scopeID is
// empty). The returned secrets carry no ciphertext.
func (s *Service) List(ctx context.Context, orgID, scopeID string) ([]store.Secret, error) {
	list, err := s.st.ListSecrets(ctx, orgID, scopeID)
	for i := range list {
		list[i].Ciphertext = nil
	}
	return list, err
}

// Delete deletes a secret by key.
func (s *Service) Delete(ctx context.Context, orgID, scopeID, key string) error {
	return s.st.DeleteSecret(ctx, orgID, scopeID, key)
}

// Env is the environment an agent's runtime starts with: the secrets of its
// scope when it has one, otherwise the organization's org-level secrets.
// The two never mix, as the seed specifies. Secrets under reserved names
// (stored before those names were refused) are left out.
func (s *Service) Env(ctx context.Context, orgID, scopeID string) (map[string]string, error) {
	list, err := s.st.ListSecrets(ctx, orgID, scopeID)
	if err != nil {
		return nil, err
	}
	env := make(map[string]string, len(list))
	for _, x := range list {
		if _, reserved := Reserved(x.Key); reserved {
			continue
		}
		v, err := s.box.Open(x.Ciphertext, aad(orgID, x.Key))
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", x.Key, err)
		}
		env[x.Key] = string(v)
	}
	return env, nil
}

// Keys returns the sorted keys of env, for logging what an agent receives
// without what it is.
func Keys(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
