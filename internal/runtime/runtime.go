// Package runtime starts, watches and stops the isolated runtimes that the
// platform provisions for its agents. Each runtime is an `agenthost serve`
// in the coding role with its own workspace, loopback port and session
// database; a Driver decides what "isolated" means (a child process, a
// container).
//
// The interface follows Nomad's task drivers: Start returns a Handle whose
// State the platform persists, so that after a platform restart Recover can
// re-attach to a runtime that kept running.
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Spec describes one runtime to start.
type Spec struct {
	// ID identifies the runtime (the platform's agent id); drivers use it to
	// name workspaces, volumes and containers.
	ID string
	// Labels tie the runtime to its owner (agent id, organization) so a
	// reconciler can find runtimes nobody owns.
	Labels map[string]string
	// Port is the loopback port the runtime's HTTP API must be reachable on,
	// allocated by the platform.
	Port int
	// Command is the argv of the runtime inside its sandbox (for the process
	// driver the path of the agenthost binary and its arguments; for
	// containers the command run in the image). The runtime must listen on
	// the port given by the driver in the AGENTHOST_PORT environment variable
	// (or serve on the socket AGENTHOST_LISTEN_FD names, see
	// InheritListener) and keep its data in AGENTHOST_WORKSPACE.
	Command []string
	// InheritListener says the command can take its listening socket
	// from the descriptor named by AGENTHOST_LISTEN_FD instead of binding
	// AGENTHOST_PORT itself, as agenthost's own runtime can. A driver
	// that can bind the port for it (the process driver) then does, so
	// the platform's first health check waits in the socket's backlog
	// until the runtime serves instead of being refused and polled
	// again. Drivers that cannot ignore it.
	InheritListener bool
	// Env is extra environment: secrets and configuration.
	Env map[string]string
	// Image is the container image (container drivers only).
	Image string
	// Resources bounds the runtime where the driver can enforce it.
	Resources Resources
}

// Resources are limits a driver enforces on a runtime; zero fields take
// the driver's defaults.
type Resources struct {
	// MemoryBytes caps the memory of the runtime and everything it starts.
	MemoryBytes int64
	// NanoCPUs caps CPU time, in billionths of a CPU (1e9: one CPU).
	NanoCPUs int64
	// PidsLimit caps the processes and threads of the runtime and its
	// children together.
	PidsLimit int64
	// NofileLimit caps the open files of each process (RLIMIT_NOFILE).
	NofileLimit int64
}

// ErrMemoryLimit is matched (errors.Is) by the ExitResult.Err of a runtime
// the kernel killed because it reached its memory limit; the error's text
// says which limit.
var ErrMemoryLimit = errors.New("memory limit reached")

// Handle is a started runtime. State is opaque to the caller, which
// persists the whole Handle as JSON.
type Handle struct {
	ID     string `json:"id"`
	Driver string `json:"driver"`
	// Endpoint is the base URL of the runtime's HTTP API, e.g.
	// http://127.0.0.1:41234.
	Endpoint string          `json:"endpoint"`
	State    json.RawMessage `json:"state,omitempty"`
}

// State is what Inspect reports.
type State string

// Runtime states.
const (
	StateRunning State = "running"
	StateExited  State = "exited"
	// StateUnknown: the driver cannot find the runtime (destroyed, or lost
	// with its host).
	StateUnknown State = "unknown"
)

// Status is a runtime's observed condition.
type Status struct {
	State State
	// ExitCode is meaningful when State is StateExited; it follows
	// ExitResult's convention.
	ExitCode  int
	StartedAt time.Time
	ExitedAt  time.Time
	// Logs holds the last lines the runtime wrote, for error messages.
	Logs []string
}

// ExitResult is how a runtime ended.
type ExitResult struct {
	// ExitCode is the runtime's exit status, or 128+N when signal N killed
	// it (the shell's and Docker's convention: 137 is SIGKILL, 143 SIGTERM),
	// so every driver reports a given ending with the same number. It is -1
	// when the driver cannot know (a process driver that re-attached after a
	// platform restart is not the runtime's parent).
	ExitCode int
	// Err describes an abnormal ending (a signal, an unknown status); it is
	// nil when the runtime exited by itself, whatever its code.
	Err error
}

// Driver runs runtimes. Implementations must be safe for concurrent use.
//
// A handle from an earlier platform process should go through Recover
// first; drivers may also attach to it implicitly in the other methods.
type Driver interface {
	// Name is the driver's name ("process", "docker").
	Name() string
	// Start creates the runtime's sandbox if needed (keeping any existing
	// workspace) and starts it. It returns once the runtime has been
	// launched, not when it is healthy. Starting a runtime whose previous
	// run is still alive is an error: stop or recover it first. Persist the
	// returned handle at once.
	Start(ctx context.Context, spec Spec) (*Handle, error)
	// Wait blocks until the runtime exits or ctx ends. It returns
	// ErrNotFound for a runtime the driver cannot find.
	Wait(ctx context.Context, h *Handle) (ExitResult, error)
	// Stop asks the runtime to stop and kills it after timeout (at once
	// when timeout <= 0). Its workspace is kept. Stopping a runtime that
	// has already exited, or cannot be found, succeeds.
	Stop(ctx context.Context, h *Handle, timeout time.Duration) error
	// Destroy stops the runtime if needed and removes everything it owns,
	// its workspace included. It succeeds when there is nothing left.
	Destroy(ctx context.Context, h *Handle) error
	// Inspect reports the runtime's state; a runtime the driver cannot find
	// is StateUnknown, not an error.
	Inspect(ctx context.Context, h *Handle) (Status, error)
	// Recover re-attaches to a runtime started by an earlier process of the
	// platform, from its persisted handle. It returns ErrNotFound when the
	// runtime is gone, in which case the caller starts it again.
	Recover(ctx context.Context, h *Handle) error
}

// Lister is implemented by drivers that can enumerate the runtimes they
// left on this host, running or not, so a platform starting up can destroy
// the ones no agent owns (a crash between Start and persisting the handle,
// an agent deleted while the platform was down).
type Lister interface {
	List(ctx context.Context) ([]*Handle, error)
}

// ErrNotFound is returned for runtimes the driver does not know.
var ErrNotFound = errors.New("runtime not found")
