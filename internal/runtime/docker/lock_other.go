//go:build !unix

package docker

// lockFile does not lock where flock is missing: concurrent base builds
// then build twice, and the last one tagged wins.
func lockFile(string) (func(), error) { return func() {}, nil }
