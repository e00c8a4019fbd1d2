// Package docker is the runtime driver that runs each runtime in a Docker
// container, through the Docker Engine API (the official client,
// github.com/moby/moby/client). The engine is found as the docker CLI finds
// it: DOCKER_HOST (unix://, tcp://, ssh:// is not supported), DOCKER_TLS_VERIFY
// and DOCKER_CERT_PATH, else the local socket; the API version is
// negotiated with the engine (1.40 and later).
//
// # What a runtime gets
//
// For a runtime with id ID the driver keeps:
//
//	container  agenthost-ID            recreated at every Start, so that the
//	                                   environment (secrets) and the port are
//	                                   those of the current spec
//	volume     agenthost-ID-workspace  mounted at /workspace; outlives the
//	                                   container (stop, start, restart), removed
//	                                   by Destroy
//	volume     agenthost-ID-data       mounted at /var/lib/agenthost
//	                                   (AGENTHOST_DATA_DIR: the agent loop's
//	                                   database), likewise kept; out of the
//	                                   workspace the agent's tools write to
//
// All carry the labels agenthost.managed=true (ours), agenthost.runtime=ID,
// agenthost.scope (Options.Scope) and the spec's labels (the platform's
// agent, organization and node).
//
// The container is locked down: the image's non-root user (10001), every
// capability dropped, no-new-privileges, a read-only root filesystem except
// the two volumes and a tmpfs /tmp, Docker's init as PID 1 (it forwards
// signals and reaps the orphans of the runtime's bash tool), memory, CPU,
// pids and open-files limits, bounded json-file logs, no restart policy
// (the platform supervises), and a bridge network of its own
// (Options.Network, created with inter-container traffic disabled, found by
// label and id: see EnsureNetwork) — never the host's network. The runtime's
// port is published on 127.0.0.1 only, at the same number on the host as
// inside; the platform reaches the runtime there.
//
// So that the runtime can run its tools in a bubblewrap sandbox inside the
// container (user, PID and network namespaces, a fresh /proc), the seccomp
// profile is Docker's default plus the system calls bubblewrap needs
// (SeccompProfile), Docker's masked and read-only /proc paths are off
// (systempaths=unconfined; the kernel refuses a new /proc while they
// cover parts of the old one), and, where the engine uses AppArmor, its
// profile is off (it forbids those mounts).
//
// The environment is the image's, then Spec.Env, then the driver's own, which
// Spec.Env cannot override: AGENTHOST_PORT, AGENTHOST_HOST=0.0.0.0 (inside a
// container the runtime must listen on all its interfaces: its loopback is
// not reachable from the published port), AGENTHOST_WORKSPACE=/workspace,
// AGENTHOST_DATA_DIR=/var/lib/agenthost, AGENTHOST_RUNTIME_ID,
// HOME=/workspace and TMPDIR=/tmp. Secrets are part of the container's
// configuration, so anyone who may talk to the engine can read them
// (docker inspect): the engine's socket is as sensitive as the platform's
// master key.
//
// # The image
//
// `agenthost image build` (BuildImage) makes the runtime image: a base with
// the tools a coding agent uses plus the static agenthost binary. The
// default base is built on this machine from Debian's packages by
// mmdebstrap (BuildBase, EnsureBase) and kept in the engine under a tag and
// label derived from its recipe, so it is built once.
//
// # Platform restarts
//
// Containers outlive the platform. The engine keeps their state and exit
// status, so a driver in a new platform process re-attaches (Recover) to a
// running container from its handle and still learns its exit code. A
// container that is no longer running cannot be re-attached to: Recover
// removes it (its volume stays) and reports runtime.ErrNotFound, and the
// platform starts the runtime again. List finds every container and volume
// labelled as ours in this scope, so the platform's reconcile can destroy
// those no agent owns.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/runtime"
)

// Name is the driver's name, as it appears in handles.
const Name = "docker"

// Labels the driver puts on its containers and volumes.
const (
	// LabelManaged marks containers, volumes and networks as the driver's.
	LabelManaged = "agenthost.managed"
	// LabelRuntime is the runtime id (the platform's agent id).
	LabelRuntime = "agenthost.runtime"
	// LabelScope separates the runtimes of platforms sharing one engine.
	LabelScope = "agenthost.scope"
	// LabelPort is the runtime's published port.
	LabelPort = "agenthost.port"
)

// Paths and environment inside a container.
const (
	// Workspace is where the runtime's volume is mounted.
	Workspace = "/workspace"
	// EnvHost tells a containerized runtime which address to listen on.
	EnvHost = "AGENTHOST_HOST"
	// EnvEgressDeny is the runtime's egress deny list, to which the
	// driver adds HostAddrs.
	EnvEgressDeny = "AGENTHOST_EGRESS_DENY"
)

// DefaultImage is the image `agenthost image build` makes.
const DefaultImage = "agenthost-runtime:latest"

// DefaultNetwork is the bridge network the driver creates for runtimes.
const DefaultNetwork = "agenthost-runtimes"

// DefaultResources are the limits of a runtime whose spec and options set
// none: 1 GiB of memory, one CPU, 512 processes, 4096 open files per
// process.
var DefaultResources = Resources{MemoryBytes: 1 << 30, NanoCPUs: 1e9, PidsLimit: 512, NofileLimit: 4096}

// Resources are a container's limits; zero fields take DefaultResources.
type Resources struct {
	MemoryBytes int64
	NanoCPUs    int64
	PidsLimit   int64
	// NofileLimit is the container's RLIMIT_NOFILE (soft and hard).
	NofileLimit int64
}

// Options configures a Driver. The zero value works against the local
// engine with the default image.
type Options struct {
	// Image runs runtimes whose Spec.Image is empty. Default DefaultImage.
	// It is never pulled: build it with `agenthost image build`, or load
	// it into the engine yourself.
	Image string
	// Resources bounds every runtime; a spec's non-zero Resources fields
	// win.
	Resources Resources
	// Scope is written on every container and volume and is all List
	// reports, so platforms sharing an engine do not take each other's
	// runtimes for orphans. Give platforms sharing a store the same scope.
	Scope string
	// Network is the bridge network runtimes join; it is created (with
	// inter-container traffic disabled) when missing. Default
	// DefaultNetwork. "host" is refused.
	Network string
	// PublishIP is the host address the runtime's port is published on.
	// Default 127.0.0.1.
	PublishIP netip.Addr
	// EndpointHost is the host in handle endpoints. Default PublishIP;
	// set it when the engine is remote and its published ports are
	// reached through a tunnel or another address.
	EndpointHost string
	// HostAddrs are the public addresses of the machine the engine runs
	// on. A container reaches every service that machine binds to all
	// interfaces through them, and its own interfaces do not show them,
	// so the driver adds them to AGENTHOST_EGRESS_DENY. Default: this
	// machine's non-loopback addresses when the engine is local (a unix
	// socket); with a remote engine, list that machine's addresses.
	HostAddrs []string
	// User runs the runtime ("uid:gid" or a name in the image's
	// /etc/passwd). Default: the image's USER.
	User string
	// TmpSize bounds the tmpfs at /tmp. Default 256 MiB.
	TmpSize int64
	// LogLines is how many of the last log lines Inspect returns. Default 50.
	LogLines int
	// OrphanGrace: List leaves out containers and volumes created less
	// than this long ago, so a reconcile never removes a runtime another
	// platform process is provisioning right now. Default 1 minute; a
	// negative value lists everything.
	OrphanGrace time.Duration
	// Client talks to the engine. Default: client.New(client.FromEnv).
	Client *client.Client
	// Logger receives the driver's own events. Default slog.Default().
	Logger *slog.Logger
}

const (
	defaultTmpSize     = 256 << 20
	defaultLogLines    = 50
	defaultOrphanGrace = time.Minute
	// logMaxSize and logMaxFiles bound each container's json-file log.
	logMaxSize  = "1m"
	logMaxFiles = "2"
)

// Driver runs runtimes as Docker containers. It implements runtime.Driver
// and runtime.Lister and is safe for concurrent use.
type Driver struct {
	opts    Options
	api     *client.Client
	ownsAPI bool
	log     *slog.Logger

	netMu sync.Mutex
	netID string // the runtimes' network, once EnsureNetwork found it

	secMu  sync.Mutex
	secOpt []string // the containers' SecurityOpt, once securityOptions made it

	mu    sync.Mutex
	locks runtime.IDLocks // serialize Start and Destroy of one runtime id
}

// New returns a driver. It does not contact the engine; Ping does.
func New(opts Options) (*Driver, error) {
	if opts.Image == "" {
		opts.Image = DefaultImage
	}
	if opts.Network == "" {
		opts.Network = DefaultNetwork
	}
	if opts.Network == "host" {
		return nil, errors.New("docker: runtimes never use the host's network")
	}
	if !opts.PublishIP.IsValid() {
		opts.PublishIP = netip.MustParseAddr("127.0.0.1")
	}
	if opts.EndpointHost == "" {
		opts.EndpointHost = opts.PublishIP.String()
		if opts.PublishIP.IsUnspecified() {
			opts.EndpointHost = "127.0.0.1"
		}
	}
	if opts.TmpSize <= 0 {
		opts.TmpSize = defaultTmpSize
	}
	if opts.LogLines <= 0 {
		opts.LogLines = defaultLogLines
	}
	if opts.OrphanGrace == 0 {
		opts.OrphanGrace = defaultOrphanGrace
	}
	opts.Resources = opts.Resources.or(DefaultResources)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := &Driver{opts: opts, api: opts.Client, log: opts.Logger}
	if d.api == nil {
		c, err := NewClient()
		if err != nil {
			return nil, err
		}
		d.api, d.ownsAPI = c, true
	}
	if d.opts.HostAddrs == nil && strings.HasPrefix(d.api.DaemonHost(), "unix://") {
		d.opts.HostAddrs = localAddrs()
	}
	return d, nil
}

// localAddrs lists this machine's interface addresses but loopback, which
// inside a container is the container's own.
func localAddrs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
			out = append(out, n.IP.String())
		}
	}
	return out
}

// NewClient returns an Engine API client configured from the environment
// (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY),
// negotiating the API version on first use.
func NewClient() (*client.Client, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: engine client: %w", err)
	}
	return c, nil
}

// Ping checks that the engine answers, negotiating the API version.
func (d *Driver) Ping(ctx context.Context) error {
	return Ping(ctx, d.api)
}

// Ping checks that the engine behind c answers.
func Ping(ctx context.Context, c *client.Client) error {
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("docker: the engine at %s does not answer (is dockerd running? is DOCKER_HOST right?): %w", c.DaemonHost(), err)
	}
	return nil
}

// Close releases the client when the driver made it. Runtimes keep running.
func (d *Driver) Close() error {
	if d.ownsAPI {
		return d.api.Close()
	}
	return nil
}

var _ io.Closer = (*Driver)(nil)

// Name returns "docker".
func (d *Driver) Name() string { return Name }

// Client returns the engine client the driver uses.
func (d *Driver) Client() *client.Client { return d.api }

func (r Resources) or(def Resources) Resources {
	if r.MemoryBytes <= 0 {
		r.MemoryBytes = def.MemoryBytes
	}
	if r.NanoCPUs <= 0 {
		r.NanoCPUs = def.NanoCPUs
	}
	if r.PidsLimit <= 0 {
		r.PidsLimit = def.PidsLimit
	}
	if r.NofileLimit <= 0 {
		r.NofileLimit = def.NofileLimit
	}
	return r
}
