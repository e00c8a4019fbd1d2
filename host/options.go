package host

import (
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/agenthost/agenthost/agent/mcptools"
	"github.com/agenthost/agenthost/llm"
	"github.com/agenthost/agenthost/relay"
)

// Option configures a host. Options that mirror host.yaml keys take
// precedence over the file, which takes precedence over the defaults.
type Option func(*settings)

// settings is what the options collect before New resolves them.
type settings struct {
	code        fileConfig
	configPath  *string
	dir         string
	logger      *slog.Logger
	now         func() time.Time
	gate        Gate
	gateBuilder GateBuilder
	trust       trustOptions
	needs       func(llm.ToolCall) bool
	approveFor  time.Duration
	ping        time.Duration
	heartbeat   time.Duration
	grace       time.Duration
	notice      func(grace time.Duration, runs int)
	sweep       time.Duration
	banner      io.Writer
	maxBody     int64
	timeouts    Timeouts
	relayOpts   []relay.AnnouncerOption
	metricsAddr string
}

func ptr[T any](v T) *T { return &v }

// WithTrust sets the trust level: "open", "careful" (default) or
// "strict"; or a natural-language policy ("I trust requests that…"); or
// the path of a policy file (markdown with YAML front matter). See
// docs/trust.md.
func WithTrust(level string) Option {
	return func(s *settings) { s.code.Trust = trustSetting(level) }
}

// WithWhitelist lists addresses that are always accepted (signed callers).
func WithWhitelist(addrs ...string) Option {
	return func(s *settings) { s.code.Whitelist = &AccessList{Addresses: slices.Clone(addrs)} }
}

// WithBlacklist lists addresses that are always refused (signed callers).
func WithBlacklist(addrs ...string) Option {
	return func(s *settings) { s.code.Blacklist = &AccessList{Addresses: slices.Clone(addrs)} }
}

// WithPort sets the port Serve listens on (0 picks a free one).
func WithPort(port int) Option { return func(s *settings) { s.code.Port = &port } }

// WithWorkers bounds concurrent agent runs.
func WithWorkers(n int) Option { return func(s *settings) { s.code.Workers = &n } }

// WithQueue bounds the runs waiting for a worker; past it, 503.
func WithQueue(n int) Option { return func(s *settings) { s.code.Queue = &n } }

// WithResultTTL sets how long finished sessions are kept.
func WithResultTTL(d time.Duration) Option {
	return func(s *settings) { s.code.ResultTTL = ptr(max(1, int(d/time.Second))) }
}

// WithRelayURL sets the relay to announce to; "" disables it.
func WithRelayURL(url string) Option { return func(s *settings) { s.code.RelayURL = &url } }

// WithReload rebuilds the agent when host.yaml or its prompt file changes.
func WithReload(on bool) Option { return func(s *settings) { s.code.Reload = &on } }

// WithCoDir sets the data directory (keys, database, uploads).
func WithCoDir(dir string) Option { return func(s *settings) { s.code.CoDir = &dir } }

// WithMaxFileSize limits each uploaded file, in megabytes.
func WithMaxFileSize(mb float64) Option { return func(s *settings) { s.code.MaxFileSize = &mb } }

// WithMaxFilesPerRequest limits the files and images of one request.
func WithMaxFilesPerRequest(n int) Option {
	return func(s *settings) { s.code.MaxFilesPerRequest = &n }
}

// WithSummary describes the agent for /info and discovery.
func WithSummary(text string) Option { return func(s *settings) { s.code.Summary = &text } }

// WithExamples gives example prompts for /info and the /docs page.
func WithExamples(prompts ...string) Option {
	return func(s *settings) { s.code.Examples = ptr(slices.Clone(prompts)) }
}

// WithModel overrides the factory agent's model ("provider/model").
func WithModel(name string) Option { return func(s *settings) { s.code.Model = &name } }

// WithSystemPrompt overrides the factory agent's system prompt; a path to
// a .md/.txt file is read (and watched under reload).
func WithSystemPrompt(p string) Option { return func(s *settings) { s.code.SystemPrompt = &p } }

// WithName names the agent when the host builds it from configuration.
func WithName(name string) Option { return func(s *settings) { s.code.Name = &name } }

// WithConfigFile reads host.yaml from path; "" reads no file. By default
// the host reads <co_dir>/host.yaml when it exists.
func WithConfigFile(path string) Option { return func(s *settings) { s.configPath = &path } }

// WithDir sets the directory relative paths start from (default: the
// working directory).
func WithDir(dir string) Option { return func(s *settings) { s.dir = dir } }

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// WithClock replaces the clock, for tests of expiry and timestamps.
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// WithGate replaces the admission gate (default: the TrustGate built from
// the trust settings; see WithGateBuilder).
func WithGate(g Gate) Option { return func(s *settings) { s.gate = g } }

// WithApproval makes the named tools wait for a person's approval before
// each call. Over WebSocket the client gets approval_needed and answers
// APPROVAL_RESPONSE; where nobody can answer (plain HTTP, SSE), the call is
// refused and the model is told why.
func WithApproval(tools ...string) Option {
	set := slices.Clone(tools)
	return WithApprovalFunc(func(c llm.ToolCall) bool { return slices.Contains(set, c.Name) })
}

// WithApprovalFunc decides per call which tool calls need approval.
func WithApprovalFunc(needs func(llm.ToolCall) bool) Option {
	return func(s *settings) { s.needs = needs }
}

// WithApprovalTimeout bounds the wait for an approval or an answer to
// ask_user (default 10 minutes); a timeout refuses the call.
func WithApprovalTimeout(d time.Duration) Option { return func(s *settings) { s.approveFor = d } }

// WithPingInterval sets how often WebSocket clients get PING (default 30s).
func WithPingInterval(d time.Duration) Option { return func(s *settings) { s.ping = d } }

// WithHeartbeat sets the SSE heartbeat interval (default 15s).
func WithHeartbeat(d time.Duration) Option { return func(s *settings) { s.heartbeat = d } }

// WithShutdownGrace sets how long Shutdown lets runs finish before
// interrupting them (default 10s).
func WithShutdownGrace(d time.Duration) Option { return func(s *settings) { s.grace = d } }

// WithSweepInterval sets how often expired sessions are deleted (default
// 1 minute).
func WithSweepInterval(d time.Duration) Option { return func(s *settings) { s.sweep = d } }

// WithBannerOutput sets where Serve prints its banner (default stderr);
// io.Discard silences it.
func WithBannerOutput(w io.Writer) Option { return func(s *settings) { s.banner = w } }

// WithLegacySignatures accepts signed requests of older clients: payloads
// without "to" and signed inputs whose session or attachments no digest
// covers (host.yaml legacy_signatures). See docs/trust.md for what that
// gives up.
func WithLegacySignatures(on bool) Option { return func(s *settings) { s.code.LegacySignatures = &on } }

// WithAllowedOrigins lists browser origins ("https://app.example.com",
// "http://*.example.com:8080") whose pages may call the API, besides the
// host's own pages and loopback origins (host.yaml allowed_origins).
func WithAllowedOrigins(origins ...string) Option {
	return func(s *settings) { s.code.AllowedOrigins = ptr(slices.Clone(origins)) }
}

// WithMaxConnsPerIP bounds one client address's open connections (default
// 64; host.yaml max_connections_per_ip).
func WithMaxConnsPerIP(n int) Option { return func(s *settings) { s.code.MaxConnsPerIP = &n } }

// WithUploadQuota bounds the megabytes of files one caller keeps uploaded
// at a time (default 100; host.yaml upload_quota_mb).
func WithUploadQuota(mb float64) Option { return func(s *settings) { s.code.UploadQuotaMB = &mb } }

// WithMCPServers gives the agent the tools of these MCP servers, by name,
// as host.yaml's mcp_servers does (in OpenCode's shape; see docs/mcp.md).
// The host starts them in New and stops them in Shutdown.
func WithMCPServers(servers map[string]mcptools.Config) Option {
	return func(s *settings) { s.code.MCPServers = ptr(MCPServers(maps.Clone(servers))) }
}

// WithMaxBodyBytes bounds request bodies other than POST /input, whose
// bound follows from the upload limits (default 1 MiB).
func WithMaxBodyBytes(n int64) Option { return func(s *settings) { s.maxBody = n } }
