//go:build !linux

package coderuntime

// protectFromChildren does nothing here: the coding runtime's isolation
// needs Linux.
func protectFromChildren() error { return nil }
