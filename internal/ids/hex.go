package ids

import (
	"crypto/rand"
	"encoding/hex"
)

// Hex returns prefix followed by 24 hex digits (96 random bits): the ids
// of sessions, messages, permissions and questions ("ses_…", "perm_…").
func Hex(prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ids: crypto/rand failed: " + err.Error())
	}
	return prefix + hex.EncodeToString(b[:])
}
