package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/store"
	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/runtime/process"
	"github.com/agenthost/agenthost/internal/version"
	"github.com/agenthost/agenthost/llm"
)

// platformFlags are the flags of `agenthost platform` and its token
// subcommands (the command framework has one flag set per command).
type platformFlags struct {
	port         int
	host         string
	data         string
	database     string
	driver       string
	publicURL    string
	advertiseURL string
	command      string
	ports        string
	maxAgents    int
	maxRunning   int
	defaultModel string
	node         string
	org          string
	label        string
	// Docker driver (see image_platform.go).
	image string
	// Runtimes' limits and isolation, both drivers.
	memory, disk string
	cpus         float64
	pids, nofile int64
	uids         string
	insecure     bool
	metricsAddr  string
	egressAllow  string
	egressDeny   string
	modelEnv     string
	grace        time.Duration
	dataFlag     bool // --data was given (the banner repeats it)
}

func init() {
	var o platformFlags
	register(&Command{
		Name:  "platform",
		Env:   map[string][]string{"port": {"AGENTHOST_PORT", "PORT"}},
		Words: []string{"token create", "token list", "token revoke"},
		Usage: "[--port N] [--data DIR] [--database postgres://...] [--driver process|docker [--image NAME]]\n       agenthost platform token create --org NAME --label LABEL\n       agenthost platform token list --org NAME\n       agenthost platform token revoke --org NAME TOKEN_ID",
		Short: "run the multi-tenant agent platform (REST API, dashboard, a runtime per agent)",
		Long: `Runs the platform: a control plane that provisions agents, each in its own
runtime (agenthost serve --role coding, one process per agent with the
process driver), behind the /api/v1 REST API with Bearer tokens.

State lives in the data directory (--data, below): the SQLite
database, the master key that encrypts secrets (unless AGENTHOST_MASTER_KEY
is set) and the runtimes' workspaces. With --database postgres://... the
state is in PostgreSQL, shared by several platform replicas; give each
replica the same AGENTHOST_MASTER_KEY and its own --node. Any replica
serves any agent: a request for an agent whose runtime another replica
runs is forwarded to that replica's --advertise-url, which replicas on
other hosts must set (the default, http://127.0.0.1:PORT, only reaches
replicas on the same host).

API tokens are managed from the command line, against the same --data or
--database:

  agenthost platform token create --org acme --label production
  agenthost platform token list --org acme
  agenthost platform token revoke --org acme TOKEN_ID

On Ctrl-C (or SIGTERM) it stops taking requests and waits up to
--shutdown-grace for those in flight and for agent operations under way
(creating, starting, stopping); the agents' runtimes keep running, and the
next start re-attaches them. A second Ctrl-C stops at once.

See docs/platform.md and docs/operations.md.`,
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&o.port, "port", 8080, "port to listen on")
			fs.DurationVar(&o.grace, "shutdown-grace", defaultShutdownGrace, "on Ctrl-C or SIGTERM, how long requests and agent operations in flight may take to finish")
			fs.StringVar(&o.host, "host", "", "address to listen on (default: all interfaces)")
			fs.StringVar(&o.data, "data", "", "data directory (default $AGENTHOST_DATA, else /var/lib/agenthost as root, else $XDG_DATA_HOME/agenthost)")
			fs.StringVar(&o.database, "database", "", "PostgreSQL DSN (postgres://...); default SQLite in the data directory")
			fs.StringVar(&o.driver, "driver", "process", "runtime driver: process or docker (see docs/docker.md)")
			fs.StringVar(&o.publicURL, "public-url", "", "base URL clients reach the platform at (default http://localhost:PORT)")
			fs.StringVar(&o.command, "runtime-command", "", `runtime argv, space-separated; {agentId} and {port} are replaced (default "<this binary> serve --role coding")`)
			fs.StringVar(&o.ports, "ports", fmt.Sprintf("%d-%d", agents.DefaultPorts.Min, agents.DefaultPorts.Max), "loopback port range for runtimes")
			fs.IntVar(&o.maxAgents, "max-agents", 50, "agents per organization (0: no limit)")
			fs.IntVar(&o.maxRunning, "max-running", 100, "runtimes running at once on this node (0: no limit)")
			fs.StringVar(&o.defaultModel, "default-model", "offline/demo", "model of agents created without one")
			fs.StringVar(&o.advertiseURL, "advertise-url", "", "base URL the other replicas reach this one at, to forward requests for its agents (default http://127.0.0.1:PORT when --host is empty or loopback; set it when replicas run on several hosts)")
			fs.StringVar(&o.node, "node", "", "this replica's name among replicas sharing --database (default: hostname; \"local\" with SQLite)")
			fs.StringVar(&o.org, "org", "", "organization (token commands)")
			fs.StringVar(&o.label, "label", "", "token label (token create)")
			fs.StringVar(&o.memory, "runtime-memory", "1g", "memory limit of each runtime, its tools included")
			fs.Float64Var(&o.cpus, "runtime-cpus", 1, "CPU limit of each runtime, in CPUs")
			fs.Int64Var(&o.pids, "runtime-pids", 512, "limit on the processes and threads of each runtime")
			fs.Int64Var(&o.nofile, "runtime-nofile", 1024, "limit on the open files of each process of a runtime")
			fs.StringVar(&o.disk, "runtime-disk", "10g", "size limit of each agent's workspace")
			fs.StringVar(&o.uids, "runtime-uids", process.DefaultUIDs.String(), "uids (and gids) for the runtimes when the platform runs as root: one per runtime, never reused (--driver process)")
			fs.StringVar(&o.modelEnv, "model-env", strings.Join(llm.ProviderEnv(), ","), "comma-separated variables of this environment given to every agent loop but never to its tools: the operator's model keys and endpoints (an organisation's secret of the same name wins)")
			fs.StringVar(&o.egressDeny, "egress-deny", "", "comma-separated addresses and CIDRs the agents' tools may never reach, even when public or allowed (e.g. this host's public address when runtimes run on another machine's Docker)")
			fs.StringVar(&o.egressAllow, "egress-allow", "", "comma-separated hosts, addresses and CIDRs the agents' tools may reach beyond the public internet (loopback, link-local and private ranges are refused otherwise)")
			fs.BoolVar(&o.insecure, "insecure-no-sandbox", false, "start even where runtimes cannot be isolated, and run the agents' tools without a sandbox: for one trusted user on a development machine only")
			fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at /metrics on this address (e.g. 127.0.0.1:9464), apart from the API's port, which organisations reach; empty: none (see docs/operations.md)")
			dockerFlags(fs, &o)
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			o.dataFlag = o.data != ""
			if o.data == "" {
				o.data = platform.DefaultDataDir(env.Getenv, os.Geteuid())
			}
			if !filepath.IsAbs(o.data) {
				o.data = filepath.Join(env.Dir, o.data)
			}
			if len(args) > 0 && args[0] == "token" {
				return runToken(ctx, env, &o, args[1:])
			}
			if len(args) > 0 {
				return Usagef("unexpected argument %q", args[0])
			}
			return runPlatform(ctx, env, &o)
		},
	})
}

// runtimeLimits reads the runtimes' limits from the flags.
func runtimeLimits(o *platformFlags) (res runtime.Resources, disk int64, err error) {
	mem, err := units.RAMInBytes(o.memory)
	if err != nil || mem <= 0 {
		return res, 0, Usagef("--runtime-memory %q: want a size such as 512m or 2g", o.memory)
	}
	disk, err = units.RAMInBytes(o.disk)
	if err != nil || disk <= 0 {
		return res, 0, Usagef("--runtime-disk %q: want a size such as 500m or 10g", o.disk)
	}
	if o.cpus <= 0 || o.pids <= 0 || o.nofile <= 0 {
		return res, 0, Usagef("--runtime-cpus, --runtime-pids and --runtime-nofile must be positive")
	}
	return runtime.Resources{MemoryBytes: mem, NanoCPUs: int64(o.cpus * 1e9), PidsLimit: o.pids, NofileLimit: o.nofile}, disk, nil
}

// egressAllow splits --egress-allow.
func egressAllow(o *platformFlags) []string { return splitList(o.egressAllow) }

// modelEnv reads the variables --model-env names from the platform's
// environment; unset ones are left out.
func modelEnv(env *Env, names string) map[string]string {
	out := map[string]string{}
	for _, k := range append(splitList(names), otelEnv...) {
		if v := env.Getenv(k); v != "" {
			out[k] = v
		}
	}
	return out
}

// newDriver makes the runtime driver named on the command line.
func newDriver(o *platformFlags, res runtime.Resources, log *slog.Logger) (runtime.Driver, io.Closer, error) {
	switch o.driver {
	case "process":
		uids, err := process.ParseUIDRange(o.uids)
		if err != nil {
			return nil, nil, Usagef("--runtime-uids: %v", err)
		}
		d, err := process.New(process.Options{
			Root: filepath.Join(o.data, "runtimes"), Logger: log,
			UIDs: uids, Resources: res, InsecureNoSandbox: o.insecure,
		})
		if err != nil {
			return nil, nil, err
		}
		return d, d, nil
	case "docker":
		return newDockerDriver(o, res, log)
	}
	return nil, nil, Usagef("unknown --driver %q (want process or docker)", o.driver)
}

func runPlatform(ctx context.Context, env *Env, o *platformFlags) error {
	// AGENTHOST_ORG and AGENTHOST_LABEL, kept for the token commands, are
	// no reason to refuse to start.
	if env.Given("org") || env.Given("label") {
		return Usagef("--org and --label belong to the token commands")
	}
	if o.grace <= 0 {
		return Usagef("--shutdown-grace must be positive")
	}
	ports, err := agents.ParsePortRange(o.ports)
	if err != nil {
		return Usagef("--ports: %v", err)
	}
	if o.advertiseURL != "" {
		if u, err := url.Parse(o.advertiseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Usagef("--advertise-url: want an http:// or https:// base URL, got %q", o.advertiseURL)
		}
	}
	res, disk, err := runtimeLimits(o)
	if err != nil {
		return err
	}
	stopTracing, err := startTracing(ctx, env, "agenthost-platform")
	if err != nil {
		return err
	}
	defer stopTracing()
	log := env.Logger
	// Before the driver, which checks that runtime users can reach its
	// root inside it (a data directory from an older agenthost is 0700).
	if err := platform.PrepareDataDir(o.data); err != nil {
		return err
	}
	driver, closer, err := newDriver(o, res, log)
	if err != nil {
		return err
	}
	defer closer.Close()
	ln, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)))
	if err != nil {
		return err
	}
	defer ln.Close()
	if o.publicURL == "" {
		o.publicURL = platform.URLFor(ln.Addr())
	}
	srv, err := platform.New(platform.Config{
		DataDir: o.data, Database: o.database, Driver: driver, PublicURL: o.publicURL, AdvertiseURL: o.advertiseURL,
		Getenv: env.Getenv, Logger: log, InsecureNoSandbox: o.insecure,
		Agents: agents.Config{
			Node: o.node, Command: strings.Fields(o.command), DefaultModel: o.defaultModel,
			MaxAgentsPerOrg: o.maxAgents, MaxRunning: o.maxRunning, Ports: ports,
			Resources: res, DiskBytes: disk, EgressAllow: egressAllow(o), EgressDeny: splitList(o.egressDeny),
			ModelEnv: modelEnv(env, o.modelEnv),
		},
	})
	if err != nil {
		return err
	}
	stopMetrics, err := serveMetrics(env, o.metricsAddr, srv.MetricsHandler())
	if err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	defer stopMetrics()
	// The platform serves until ctx ends; then this shuts it down with
	// the grace the operator chose, after saying what it waits for.
	sctx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(sctx, ln) }()
	printPlatformBanner(env.Stdout, srv.BaseURL(), o)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintf(env.Stderr, "shutting down, waiting up to %s for requests and agent operations in flight; %s keep running, re-attached at the next start… (Ctrl-C again to stop now)\n",
		o.grace, runningAgents(srv))
	gctx, cancel := context.WithTimeout(context.Background(), o.grace)
	defer cancel()
	err = srv.Shutdown(gctx)
	stopServing()
	if serr := <-errc; err == nil {
		err = serr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: not everything finished within --shutdown-grace %s: %w", o.grace, err)
	}
	return err
}

// runningAgents says how many of this node's agents have a runtime
// running ("3 agents' runtimes").
func runningAgents(srv *platform.Server) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list, err := srv.Store().NodeAgents(ctx, srv.Agents().Node())
	if err != nil {
		return "the agents' runtimes"
	}
	n := 0
	for _, a := range list {
		if a.Status == store.StatusRunning {
			n++
		}
	}
	if n == 1 {
		return "1 agent's runtime"
	}
	return fmt.Sprintf("%d agents' runtimes", n)
}

func printPlatformBanner(w io.Writer, base string, o *platformFlags) {
	store := "SQLite in " + filepath.Join(o.data, platform.DatabaseFile)
	where := ""
	if o.dataFlag {
		where = " --data " + o.data
	}
	if o.database != "" {
		store, where = "PostgreSQL", " --database '<the same DSN>'"
	}
	sandbox := "each tool call in a bubblewrap sandbox; limits per runtime: " +
		fmt.Sprintf("%s memory, %g CPU, %d processes, %d open files, %s disk", o.memory, o.cpus, o.pids, o.nofile, o.disk)
	if o.insecure {
		sandbox = "DISABLED (--insecure-no-sandbox): the agents' tools run unsandboxed; for one trusted user only"
	}
	fmt.Fprintf(w, `agenthost platform `+version.String()+` listening on %[1]s
  state:    %[2]s
  runtimes: %[3]s driver, loopback ports %[4]s
  sandbox:  %[6]s

Next:
  1. Create an API token (shown once):
       agenthost platform token create --org my-org --label production%[5]s
  2. Create an agent:
       curl -X POST %[1]s/api/v1/agents \
         -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
         -d '{"name": "my-agent"}'
  3. Check it:  curl -H "Authorization: Bearer $TOKEN" %[1]s/api/v1/agents

`, base, store, o.driver, o.ports, where, sandbox)
}
