// Package ids makes agenthost's random ids: New the platform's resource
// ids, Hex the prefixed ids of sessions, messages and requests. Both are
// unguessable and never collide in practice.
package ids

import (
	"crypto/rand"
)

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// New returns a fresh platform resource id: 25 lowercase alphanumerics
// starting with "c", the shape of the seed's ids ("clx1abc2def3..."), from
// 124 random bits.
func New() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("ids: crypto/rand failed: " + err.Error())
	}
	out := make([]byte, 25)
	out[0] = 'c'
	for i, v := range b {
		// 252 = 7*36: values above it would bias the alphabet; fold them
		// back with a second draw from the low bits instead of looping.
		if v >= 252 {
			v &= 0x1f
		}
		out[i+1] = alphabet[int(v)%36]
	}
	return string(out)
}
