//go:build !linux

package process

import (
	"context"
	"errors"
	"time"

	"github.com/agenthost/agenthost/internal/runtime"
)

// errUnsupported: the driver relies on /proc, pidfds and waitid, which are
// Linux's.
var errUnsupported = errors.New("process: the process driver requires Linux")

// Driver is the process driver; outside Linux it only reports that it is
// unavailable, so the platform still builds there.
type Driver struct{}

var (
	_ runtime.Driver = (*Driver)(nil)
	_ runtime.Lister = (*Driver)(nil)
)

// New fails outside Linux.
func New(opts Options) (*Driver, error) { return nil, errUnsupported }

// Name returns "process".
func (d *Driver) Name() string { return Name }

// Close does nothing.
func (d *Driver) Close() error { return nil }

// Start fails outside Linux.
func (d *Driver) Start(context.Context, runtime.Spec) (*runtime.Handle, error) {
	return nil, errUnsupported
}

// Wait fails outside Linux.
func (d *Driver) Wait(context.Context, *runtime.Handle) (runtime.ExitResult, error) {
	return runtime.ExitResult{}, errUnsupported
}

// Stop fails outside Linux.
func (d *Driver) Stop(context.Context, *runtime.Handle, time.Duration) error { return errUnsupported }

// Destroy fails outside Linux.
func (d *Driver) Destroy(context.Context, *runtime.Handle) error { return errUnsupported }

// Inspect fails outside Linux.
func (d *Driver) Inspect(context.Context, *runtime.Handle) (runtime.Status, error) {
	return runtime.Status{}, errUnsupported
}

// Recover fails outside Linux.
func (d *Driver) Recover(context.Context, *runtime.Handle) error { return errUnsupported }

// List fails outside Linux.
func (d *Driver) List(context.Context) ([]*runtime.Handle, error) { return nil, errUnsupported }
