//go:build !linux

package sandbox

import (
	"errors"
	"os"
)

// InitCommand is the hidden subcommand that runs the sandbox's init.
const InitCommand = "sandbox-init"

// RunInitIfAsked does nothing here: the sandbox needs Linux.
func RunInitIfAsked() {}

func installSeccomp() error { return errors.New("seccomp needs Linux") }

func socketPair() (a, b *os.File, err error) {
	return nil, nil, errors.New("the tool sandbox needs Linux")
}
