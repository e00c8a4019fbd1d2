// Package coderuntime is the coding runtime that `agenthost serve --role
// coding` runs for the platform: the session engine (internal/engine, the
// one host stands on) serving one coding agent (the internal/coding tools
// in a workspace), with the control API of docs/runtime-control.md —
// seed 003's per-agent API under /control, plus status and a resumable
// event stream — as its front end. Client is the platform's Go client of
// that API.
//
// The engine gives each session a queue of user messages and at most one
// turn running, on a bounded number of workers; every message, event and
// pending permission or question is committed to the database as it
// happens, so a runtime killed with SIGKILL comes back with its history,
// its queued messages, and its unanswered requests marked expired. This
// package adds what is the control API's: its event vocabulary
// (journal.go), its history shape (wire.go), the coding permission rules
// as the engine's approval policy (policy.go), uploads and the HTTP
// routes.
package coderuntime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/agent/mcptools"
	"github.com/agenthost/agenthost/internal/coding"
	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/internal/obs/runobs"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/internal/store/sqlite"
	"github.com/agenthost/agenthost/llm"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a Runtime.
type Config struct {
	// Workspace is the agent's working directory; it is created if missing.
	Workspace string
	// DataDir holds runtime.db; default Workspace/.agenthost.
	DataDir string
	// Model is "provider/model"; default offline/demo.
	Model string
	// HiddenPrompt is appended to the system prompt of every session.
	HiddenPrompt string
	// Token authenticates /control requests; it must not be empty.
	Token string
	// Rules are permission rules on top of coding.DefaultRules.
	Rules []coding.Rule
	// Tools tunes the coding tools; New adds the sandbox, the egress
	// policy and the disk limit below. Their environment is built from
	// nothing plus ToolEnv, never this process's.
	Tools coding.Options
	// Sandbox is AGENTHOST_SANDBOX: "bwrap" (the default) runs the tools
	// in bubblewrap, one sandbox per session, and New fails when that is
	// not possible here; "none" runs them as this process's user, with a
	// loud warning.
	Sandbox string
	// SandboxChecked is AGENTHOST_SANDBOX_CHECKED=1: the driver that
	// started this runtime has already checked, as this runtime's user,
	// that bubblewrap makes the sandbox's namespaces here (the process
	// driver does at platform start), so New does not probe again — a
	// probe is a bwrap run on the path to a runtime's first /health. A
	// sandbox that fails later still fails the tool call, saying why.
	SandboxChecked bool
	// ToolEnv are the NAME=value pairs handed to tools (the variables
	// AGENTHOST_TOOL_ENV names).
	ToolEnv []string
	// EgressAllow is AGENTHOST_EGRESS_ALLOW: CIDRs, IPs and host names the
	// tools may reach beyond the public internet.
	EgressAllow string
	// EgressDeny is AGENTHOST_EGRESS_DENY: CIDRs and IPs refused whatever
	// else allows them (the public addresses of a container's host).
	EgressDeny string
	// DiskLimit is AGENTHOST_DISK_LIMIT, the workspace's size cap in bytes
	// (default 10 GiB); NoFile is AGENTHOST_NOFILE_LIMIT, open files per
	// tool process (default 1024).
	DiskLimit int64
	NoFile    uint64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MaxUploadFile and MaxUploadTotal override the seed's upload limits
	// (50 MB per file, 100 MB in total), for tests.
	MaxUploadFile, MaxUploadTotal int64
	// Heartbeat is the SSE keep-alive interval (default 15s).
	Heartbeat time.Duration
	// Workers bounds the turns running at once, across sessions
	// (AGENTHOST_WORKERS, default 4); further turns wait their turn.
	Workers int
	// Registry resolves Model (default: the providers configured by the
	// environment); tests point it at a fake provider.
	Registry *llm.Registry
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MCPServers are the agent's MCP servers (AGENTHOST_MCP_SERVERS), run
	// as this runtime's children in the workspace (mcp.go).
	MCPServers map[string]mcptools.Config
}

// Runtime is one coding agent with its sessions. Build it with New, serve
// Handler, and Close it.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	st    *sqlite.Store
	eng   *engine.Engine
	ag    *agent.Agent
	tools []agent.Tool
	rules *coding.Rules
	ws    string
	iso   *isolation
	mcp   []*mcptools.Server
	reg   *prometheus.Registry // GET /metrics
	runs  *runobs.Runs
	httpm *obs.HTTPMetrics

	uploadMu sync.Mutex // serialises uploads, so the total stays right

	ctx    context.Context // cancelled by Close: ends event streams
	cancel context.CancelFunc
	closed sync.Once
}

// ErrNotFound is returned for an unknown session.
var ErrNotFound = engine.ErrNotFound

// DatabaseName is the runtime's database file in its data directory.
const DatabaseName = "runtime.db"

// New opens the runtime's database, recovers from an earlier run that
// did not end cleanly (interrupted turns, expired requests), builds the
// agent, and starts the turns of messages still queued.
func New(cfg Config) (*Runtime, error) {
	if cfg.Token == "" {
		return nil, errors.New("coderuntime: a control token is required")
	}
	if cfg.Model == "" {
		cfg.Model = agent.DefaultModel
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.MaxUploadFile <= 0 {
		cfg.MaxUploadFile = MaxUploadFile
	}
	if cfg.MaxUploadTotal <= 0 {
		cfg.MaxUploadTotal = MaxUploadTotal
	}
	ws, err := filepath.Abs(cfg.Workspace)
	if err != nil {
		return nil, fmt.Errorf("coderuntime: workspace: %w", err)
	}
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return nil, fmt.Errorf("coderuntime: workspace: %w", err)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(ws, ".agenthost")
	}
	iso, err := isolate(&cfg, ws, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("coderuntime: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			iso.close()
		}
	}()
	tools, err := coding.Tools(ws, cfg.Tools)
	if err != nil {
		return nil, err
	}
	sys := coding.SystemPrompt(coding.WorkspacePath)
	if h := strings.TrimSpace(cfg.HiddenPrompt); h != "" {
		sys += "\n\n" + h
	}
	opts := []agent.Option{agent.WithModel(cfg.Model), agent.WithSystemPrompt(sys), agent.WithTools(tools...)}
	if cfg.Registry != nil {
		opts = append([]agent.Option{agent.WithRegistry(cfg.Registry)}, opts...)
	}
	servers, err := openMCP(context.Background(), &cfg, ws, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("coderuntime: %w", err)
	}
	defer func() {
		if !ok {
			closeMCP(servers)
		}
	}()
	if o := mcpOption(servers); o != nil {
		opts = append(opts, o)
	}
	ag, err := agent.New("coding", opts...)
	if err != nil {
		return nil, fmt.Errorf("coderuntime: %w", err)
	}
	ctx := context.Background()
	path := filepath.Join(cfg.DataDir, DatabaseName)
	if err := upgradeV1(ctx, path); err != nil {
		return nil, fmt.Errorf("coderuntime: %w", err)
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("coderuntime: %w", err)
	}
	fail := func(what string, err error) (*Runtime, error) {
		st.Close()
		return nil, fmt.Errorf("coderuntime: %s%w", what, err)
	}
	remembered, err := agentRules(ctx, st)
	if err != nil {
		return fail("reading rules: ", err)
	}
	rules, err := coding.NewRules(append(append([]coding.Rule(nil), cfg.Rules...), remembered...)...)
	if err != nil {
		return fail("", err)
	}
	if err := iso.check(); err != nil {
		return fail("", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{cfg: cfg, log: obs.Logger(cfg.Logger), st: st, ag: ag, tools: tools, rules: rules, ws: ws, iso: iso, mcp: servers, ctx: rctx, cancel: cancel,
		reg: obs.NewRegistry()}
	r.runs, r.httpm = runobs.NewRuns(r.reg, ag.Name), obs.NewHTTPMetrics(r.reg)
	r.reg.MustRegister(st.Collectors()...)
	r.eng, err = engine.New(engine.Config{
		Store:      st,
		Journal:    r.runs.Journal(engine.JournalFunc(controlEvents)),
		Agent:      func() (*agent.Agent, error) { return ag, nil },
		Workers:    cfg.Workers,
		TextWindow: deltaWindow,
		KeepEvents: keepEvents,
		Title:      title,
		Approver:   r.approver,
		Asker:      r.asker,
		// The tools run in the session's sandbox.
		// The span of the platform request that sent the message is the
		// turn's parent.
		// The turn's log lines carry that request's id.
		TurnContext: func(ctx context.Context, t *engine.Turn) context.Context {
			d, _ := t.Data.(turnData)
			if d.requestID != "" {
				ctx = obs.WithRequestID(ctx, d.requestID)
			}
			return coding.WithSession(r.runs.StartTurn(ctx, t, d.trace), t.SessionID)
		},
		ProcessName: "runtime",
		ReleaseIdle: releaseIdle,
		RequestNoun: func(kind string) string { return kind + " request" },
		Logger:      r.log,
		Now:         cfg.Now,
	})
	if err == nil {
		r.runs.Engine(r.eng)
		err = r.eng.Recover(ctx)
	}
	if err != nil {
		cancel()
		return fail("recovering: ", err)
	}
	ok = true
	return r, nil
}

// deltaWindow is how long text deltas are gathered into one
// message.delta event, so a fast model does not cost a transaction per
// word; keepEvents bounds the event log; releaseIdle is how long the
// runtime stays idle before it returns its free memory (engine
// Config.ReleaseIdle).
const (
	deltaWindow = 25 * time.Millisecond
	keepEvents  = 100_000
	releaseIdle = 2 * time.Second
)

// Workspace returns the absolute workspace directory.
func (r *Runtime) Workspace() string { return r.ws }

// Close cancels running turns (their pending requests expire; queued
// messages stay queued for the next start), waits for them, ends event
// streams and closes the database.
func (r *Runtime) Close() error {
	var err error
	r.closed.Do(func() {
		done, cancel := context.WithCancel(context.Background())
		cancel()
		r.eng.Shutdown(done)
		r.cancel()
		r.iso.close()
		closeMCP(r.mcp)
		err = r.st.Close()
	})
	return err
}

func (r *Runtime) nowMS() int64 { return r.cfg.Now().UnixMilli() }

// Send accepts a user message for sessionID, or for a new session when it
// is empty. The message is committed before Send returns and runs after
// the turns before it.
func (r *Runtime) Send(ctx context.Context, sessionID, text string) (SendResult, error) {
	return r.send(ctx, sessionID, ids.Hex("ses_"), text)
}

// turnData is what a turn keeps of the request that sent its message:
// its span, the turn's parent, and its id, for the turn's log lines.
type turnData struct {
	trace     trace.SpanContext
	requestID string
}

// send is Send with the new session's id given.
func (r *Runtime) send(ctx context.Context, sessionID, newSessionID, text string) (SendResult, error) {
	a, err := r.eng.Enqueue(ctx, engine.Input{SessionID: sessionID, NewSessionID: newSessionID, Prompt: text, Attended: true,
		Data:    turnData{trace: trace.SpanContextFromContext(ctx), requestID: obs.RequestID(ctx)},
		Message: llm.Message{Parts: []llm.Part{llm.TextPart(text)}, Created: r.nowMS()}})
	if err != nil {
		return SendResult{}, err
	}
	return SendResult{SessionID: a.SessionID, Sent: true, MessageID: a.MessageID, Queued: a.Queued}, nil
}

// Status reports busy and the sessions, oldest first.
func (r *Runtime) Status(ctx context.Context) (Status, error) {
	ss, err := r.eng.Sessions(ctx)
	if err != nil {
		return Status{}, err
	}
	st := Status{Sessions: make([]SessionStatus, len(ss))}
	for i, s := range ss {
		st.Busy = st.Busy || s.Busy
		st.Sessions[i] = SessionStatus{ID: s.ID, Title: titleOf(s.Title), Busy: s.Busy}
		if s.Error != "" && (st.LastError == nil || s.Updated.Unix() >= st.LastError.Time) {
			st.LastError = &TurnError{SessionID: s.ID, Message: s.Error, Time: s.Updated.Unix()}
		}
	}
	return st, nil
}

func titleOf(t string) *string {
	if t == "" {
		return nil
	}
	return &t
}

// Abort cancels the running turn of a session, expires its pending
// request, discards the messages queued behind it, and waits until the
// session is idle (or ctx ends).
func (r *Runtime) Abort(ctx context.Context, sessionID string) error {
	return r.eng.Abort(ctx, sessionID)
}

// AbortAll aborts every busy session and returns their ids; the sessions'
// sandboxes go too, with what runs in the background.
func (r *Runtime) AbortAll(ctx context.Context) ([]string, error) {
	ids, err := r.eng.AbortAll(ctx)
	if err != nil {
		return ids, err
	}
	r.iso.closeAll()
	return ids, nil
}

// History returns one session's messages in the seed's shape, and
// whether its latest turn was interrupted.
func (r *Runtime) History(ctx context.Context, sessionID string) (SessionHistory, error) {
	ss, err := r.eng.Session(ctx, sessionID)
	if err != nil {
		return SessionHistory{}, err
	}
	out, err := r.messages(ctx, sessionID)
	if err != nil {
		return SessionHistory{}, err
	}
	return SessionHistory{SessionID: sessionID, Messages: out, Usage: usageOf(out),
		Interrupted: ss.Status == store.StatusInterrupted}, nil
}

func (r *Runtime) messages(ctx context.Context, sessionID string) ([]Message, error) {
	rows, err := r.eng.History(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	return renderHistory(rows)
}

// AllHistory returns every session's messages, oldest session first.
func (r *Runtime) AllHistory(ctx context.Context) (AllMessages, error) {
	ss, err := r.eng.Sessions(ctx)
	if err != nil {
		return AllMessages{}, err
	}
	all := AllMessages{Sessions: []SessionMessages{}}
	for _, s := range ss {
		out, err := r.messages(ctx, s.ID)
		if err != nil {
			return all, err
		}
		all.Sessions = append(all.Sessions, SessionMessages{SessionID: s.ID, Title: titleOf(s.Title), Messages: out, Usage: usageOf(out)})
	}
	return all, nil
}

// Usage sums cost and tokens per session and in total.
func (r *Runtime) Usage(ctx context.Context) (UsageReport, error) {
	all, err := r.AllHistory(ctx)
	if err != nil {
		return UsageReport{}, err
	}
	rep := UsageReport{Sessions: []SessionUsage{}}
	var total Usage
	for _, s := range all.Sessions {
		rep.Sessions = append(rep.Sessions, SessionUsage{SessionID: s.SessionID, Title: s.Title, Cost: s.Usage.Cost, Tokens: s.Usage.Tokens})
		total.add(s.Usage.Cost, s.Usage.Tokens)
	}
	rep.TotalCost, rep.TotalTokens = total.Cost, total.Tokens
	return rep, nil
}

// title names a session after its first message.
func title(text string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	line = strings.TrimSpace(line)
	if r := []rune(line); len(r) > 60 {
		line = strings.TrimSpace(string(r[:59])) + "…"
	}
	if line == "" {
		line = "Untitled"
	}
	return line
}
