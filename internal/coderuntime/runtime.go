// Package coderuntime is the coding runtime that `agenthost serve --role
// coding` runs for the platform: one coding agent (the internal/coding
// tools in a workspace), its sessions in SQLite, and the control API of
// docs/runtime-control.md — seed 003's per-agent API under /control, plus
// status and a resumable event stream. Client is the platform's Go client
// of that API.
//
// Each session has a queue of user messages and at most one turn running;
// every message, event and pending permission or question is committed to
// the database as it happens, so a runtime killed with SIGKILL comes back
// with its history, its queued messages, and its unanswered requests
// marked expired.
package coderuntime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/coding"
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
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Runtime is one coding agent with its sessions. Build it with New, serve
// Handler, and Close it.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	st    *store
	ag    *agent.Agent
	tools []agent.Tool
	rules *coding.Rules
	ws    string
	iso   *isolation

	uploadMu sync.Mutex // serialises uploads, so the total stays right

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the fields below; it may be held across store writes
	// (lock order: Runtime.mu, then store.mu).
	mu       sync.Mutex
	sessions map[string]*session
	order    []*session
	waiters  map[string]chan any
	closed   bool
}

// session is a chat thread: its queue of accepted messages and its turn.
type session struct {
	id      string
	title   *string
	queue   []storedPrompt
	running bool               // a worker goroutine is running turns
	done    chan struct{}      // closed when that worker exits
	cancel  context.CancelFunc // of the running turn
	// turnDone is closed when the running turn has ended and been
	// recorded; nil between turns.
	turnDone chan struct{}
	conv     *agent.Conversation
}

func (s *session) busy() bool { return s.running || len(s.queue) > 0 }

// ErrNotFound is returned for an unknown session.
var ErrNotFound = errors.New("session not found")

// errClosed is returned once the runtime is closing.
var errClosed = errors.New("the runtime is shutting down")

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
	ag, err := agent.New("coding", agent.WithModel(cfg.Model), agent.WithSystemPrompt(sys), agent.WithTools(tools...))
	if err != nil {
		return nil, fmt.Errorf("coderuntime: %w", err)
	}
	st, err := openStore(context.Background(), filepath.Join(cfg.DataDir, "runtime.db"))
	if err != nil {
		return nil, fmt.Errorf("coderuntime: %w", err)
	}
	remembered, err := st.rules()
	if err != nil {
		st.close()
		return nil, fmt.Errorf("coderuntime: reading rules: %w", err)
	}
	rules, err := coding.NewRules(append(append([]coding.Rule(nil), cfg.Rules...), remembered...)...)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("coderuntime: %w", err)
	}
	if err := iso.check(); err != nil {
		st.close()
		return nil, fmt.Errorf("coderuntime: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{cfg: cfg, log: cfg.Logger, st: st, ag: ag, tools: tools, rules: rules, ws: ws, iso: iso,
		ctx: ctx, cancel: cancel, sessions: map[string]*session{}, waiters: map[string]chan any{}}
	if err := r.recover(); err != nil {
		cancel()
		st.close()
		return nil, fmt.Errorf("coderuntime: recovering: %w", err)
	}
	r.mu.Lock()
	for _, s := range r.order {
		if len(s.queue) > 0 {
			r.startWorker(s)
		}
	}
	r.mu.Unlock()
	ok = true
	return r, nil
}

// Workspace returns the absolute workspace directory.
func (r *Runtime) Workspace() string { return r.ws }

// Close cancels running turns (their pending requests expire; queued
// messages stay queued for the next start), waits for them, and closes the
// database.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	r.iso.close()
	return r.st.close()
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (r *Runtime) nowMS() int64 { return r.cfg.Now().UnixMilli() }

// Send accepts a user message for sessionID, or for a new session when it
// is empty. The message is committed before Send returns and runs after
// the turns before it.
func (r *Runtime) Send(sessionID, text string) (SendResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return SendResult{}, errClosed
	}
	var s *session
	if sessionID == "" {
		s = &session{id: newID("ses_")}
	} else if s = r.sessions[sessionID]; s == nil {
		return SendResult{}, ErrNotFound
	}
	p := storedPrompt{ID: agent.NewMessageID(), SessionID: s.id, Text: text, Created: r.nowMS()}
	isNew := sessionID == ""
	err := r.st.write(func(w *writer) error {
		if isNew {
			if _, err := w.exec(`INSERT INTO sessions (id, created) VALUES (?, ?)`, s.id, p.Created); err != nil {
				return err
			}
			if err := w.event(s.id, "session", sessionEvent{SessionID: s.id}); err != nil {
				return err
			}
		}
		_, err := w.exec(`INSERT INTO prompts (id, session_id, text, state, created) VALUES (?, ?, ?, ?, ?)`,
			p.ID, s.id, p.Text, promptQueued, p.Created)
		return err
	})
	if err != nil {
		return SendResult{}, fmt.Errorf("storing the message: %w", err)
	}
	if isNew {
		r.sessions[s.id] = s
		r.order = append(r.order, s)
	}
	queued := s.busy()
	s.queue = append(s.queue, p)
	if !s.running {
		r.startWorker(s)
	}
	return SendResult{SessionID: s.id, Sent: true, MessageID: p.ID, Queued: queued}, nil
}

// startWorker runs s's queue in a goroutine. r.mu is held.
func (r *Runtime) startWorker(s *session) {
	s.running = true
	s.done = make(chan struct{})
	r.wg.Add(1)
	go r.work(s)
}

// othersBusy reports whether a session other than s is busy. r.mu is held.
func (r *Runtime) othersBusy(s *session) bool {
	for _, o := range r.order {
		if o != s && o.busy() {
			return true
		}
	}
	return false
}

// Status reports busy and the sessions, oldest first.
func (r *Runtime) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{Sessions: []SessionStatus{}}
	for _, s := range r.order {
		b := s.busy()
		st.Busy = st.Busy || b
		st.Sessions = append(st.Sessions, SessionStatus{ID: s.id, Title: s.title, Busy: b})
	}
	return st
}

// Abort cancels the running turn of a session, expires its pending
// request, discards the messages queued behind it, and waits until the
// session is idle (or ctx ends).
func (r *Runtime) Abort(ctx context.Context, sessionID string) error {
	r.mu.Lock()
	s := r.sessions[sessionID]
	if s == nil {
		r.mu.Unlock()
		return ErrNotFound
	}
	done := r.abortLocked(s)
	r.mu.Unlock()
	return waitDone(ctx, done)
}

// AbortAll aborts every busy session and returns their ids.
func (r *Runtime) AbortAll(ctx context.Context) ([]string, error) {
	r.mu.Lock()
	ids := []string{}
	var dones []chan struct{}
	for _, s := range r.order {
		if s.busy() {
			ids = append(ids, s.id)
			if d := r.abortLocked(s); d != nil {
				dones = append(dones, d)
			}
		}
	}
	r.mu.Unlock()
	for _, d := range dones {
		if err := waitDone(ctx, d); err != nil {
			return ids, err
		}
	}
	// The sessions' sandboxes go too, with what runs in the background.
	r.iso.closeAll()
	return ids, nil
}

// abortLocked discards s's queue and cancels its turn; it returns the
// channel closed when that turn has ended, or when a worker about to
// notice the empty queue exits (nil when none runs). r.mu is held.
func (r *Runtime) abortLocked(s *session) chan struct{} {
	if len(s.queue) > 0 {
		err := r.st.write(func(w *writer) error {
			_, err := w.exec(`UPDATE prompts SET state = ? WHERE session_id = ? AND state = ?`, promptDiscarded, s.id, promptQueued)
			return err
		})
		if err != nil {
			r.log.Error("discarding queued messages", "session", s.id, "err", err)
		}
		s.queue = nil
	}
	if s.cancel != nil {
		s.cancel()
	}
	switch {
	case s.turnDone != nil:
		return s.turnDone
	case s.running:
		return s.done
	}
	return nil
}

func waitDone(ctx context.Context, done chan struct{}) error {
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// History returns one session's messages in the seed's shape.
func (r *Runtime) History(sessionID string) (SessionHistory, error) {
	r.mu.Lock()
	s := r.sessions[sessionID]
	r.mu.Unlock()
	if s == nil {
		return SessionHistory{}, ErrNotFound
	}
	msgs, err := r.st.messages(sessionID)
	if err != nil {
		return SessionHistory{}, err
	}
	out := render(msgs)
	return SessionHistory{SessionID: sessionID, Messages: out, Usage: usageOf(out)}, nil
}

// AllHistory returns every session's messages, oldest session first.
func (r *Runtime) AllHistory() (AllMessages, error) {
	r.mu.Lock()
	type ref struct {
		id    string
		title *string
	}
	refs := make([]ref, len(r.order))
	for i, s := range r.order {
		refs[i] = ref{s.id, s.title}
	}
	r.mu.Unlock()
	all := AllMessages{Sessions: []SessionMessages{}}
	for _, s := range refs {
		msgs, err := r.st.messages(s.id)
		if err != nil {
			return all, err
		}
		out := render(msgs)
		all.Sessions = append(all.Sessions, SessionMessages{SessionID: s.id, Title: s.title, Messages: out, Usage: usageOf(out)})
	}
	return all, nil
}

// Usage sums cost and tokens per session and in total.
func (r *Runtime) Usage() (UsageReport, error) {
	all, err := r.AllHistory()
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
