// Package coding is the coding agent's toolbox: file tools confined to a
// workspace (read, write, edit, list, glob, grep), a shell (bash), a web
// fetcher, a question tool, and the permission rules that decide which of
// their calls a person must approve.
//
// The runtime builds the tools with Tools, gives the agent SystemPrompt, and
// wraps each run with an approver from NewApprover whose Ask callback turns
// a pending Permission into an HTTP-visible request and waits for the reply.
//
// Whatever the tools run is treated as hostile. With Options.Sandbox, bash
// runs in the calling session's bubblewrap sandbox (internal/sandbox),
// which sees the workspace at /workspace; the model is told that path in
// every mode, and the file tools accept it. webfetch dials through the
// egress policy (internal/egress): by default only the public internet,
// checked on the resolved address of every request and redirect. With
// Options.DiskLimit the workspace's size is capped: a command that grows
// it past the cap is killed, and write and edit are refused while it is
// over.
package coding

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/egress"
	"github.com/agenthost/agenthost/internal/sandbox"
)

// Options tunes the tools; the zero value is ready for use.
type Options struct {
	// BashTimeout is a command's timeout when the model gives none
	// (default 2 minutes); BashMaxTimeout caps what the model may ask for
	// (default 10 minutes).
	BashTimeout    time.Duration
	BashMaxTimeout time.Duration
	// OutputLimit caps the bytes of command output the model sees
	// (default 30 KB); the other tools have fixed, smaller bounds.
	OutputLimit int
	// BaseEnv is the environment commands start from (KEY=value) when
	// they run without a sandbox; nil means one built from nothing (PATH,
	// HOME, LANG, TMPDIR, TERM), never this process's environment. With a
	// sandbox the sandbox's environment is used instead.
	BaseEnv []string
	// Env is added after BaseEnv and the defaults that keep pagers and
	// prompts away, so it overrides both.
	Env []string
	// Sandbox runs bash commands, each session in its own sandbox (the
	// session comes from WithSession). nil runs them on the host as this
	// process's user, with everything it can reach: only for a runtime
	// started with AGENTHOST_SANDBOX=none.
	Sandbox *sandbox.Manager
	// Egress decides where webfetch may connect; nil allows the public
	// internet only.
	Egress *egress.Dialer
	// HTTPClient fetches for webfetch instead of the egress-checked
	// client (tests); it then must enforce the policy itself.
	HTTPClient *http.Client
	// DiskLimit caps the workspace's size in bytes (0: no cap).
	DiskLimit int64
	// DiskCheckInterval is how often the workspace is measured while a
	// command runs (default 2s; large workspaces are measured less often).
	DiskCheckInterval time.Duration
	// FetchLimit caps the bytes webfetch downloads (default 5 MB).
	FetchLimit int64
	// NoQuestion leaves out the question tool, for runs with nobody to ask.
	NoQuestion bool
	// Private is a directory of the workspace (slash-separated, relative)
	// whose subdirectories belong to sessions, one each, named by the
	// session id (the session pages' uploads). A session's file tools
	// act in another session's subdirectory only with a person's approval
	// that the permission marks as the organization's to give
	// (metadata "organization": true), and list, glob and grep leave those
	// subdirectories out of what they walk.
	Private string
}

func (o Options) withDefaults() Options {
	if o.BashTimeout <= 0 {
		o.BashTimeout = 2 * time.Minute
	}
	if o.BashMaxTimeout <= 0 {
		o.BashMaxTimeout = 10 * time.Minute
	}
	if o.BashTimeout > o.BashMaxTimeout {
		o.BashTimeout = o.BashMaxTimeout
	}
	if o.OutputLimit <= 0 {
		o.OutputLimit = 30 << 10
	}
	if o.FetchLimit <= 0 {
		o.FetchLimit = 5 << 20
	}
	return o
}

// Tools returns the coding tools working in root: read, write, edit, list,
// glob, grep, bash, webfetch and (unless opts.NoQuestion) question. Every
// tool that touches the workspace implements Requester, so NewApprover can
// describe its calls to a person.
func Tools(root string, opts Options) ([]agent.Tool, error) {
	w, err := OpenWorkspace(root)
	if err != nil {
		return nil, fmt.Errorf("coding tools: %w", err)
	}
	opts = opts.withDefaults()
	w.disk = newDiskGuard(w.real, opts.DiskLimit, opts.DiskCheckInterval)
	w.private = strings.Trim(filepath.ToSlash(filepath.Clean(opts.Private)), "/")
	if w.private == "." {
		w.private = ""
	}
	tools := []agent.Tool{
		readTool(w, opts),
		writeTool(w),
		editTool(w),
		listTool(w, opts),
		globTool(w, opts),
		grepTool(w, opts),
		bashTool(w, opts),
		webfetchTool(opts),
	}
	if !opts.NoQuestion {
		tools = append(tools, QuestionTool())
	}
	return tools, nil
}

// SystemPrompt tells the model where it works (root, normally
// WorkspacePath) and how to use the tools; the runtime appends it to the
// agent's own prompt.
func SystemPrompt(root string) string {
	return strings.TrimSpace(fmt.Sprintf(`
You are a coding agent working in the directory %s (the workspace). All file
tools take paths relative to it (absolute paths inside it also work); paths
that leave it, also through symlinks, are refused.

Tools:
- read: read a file with line numbers; use offset and limit for large files.
- write: create or overwrite a file (parent directories are created).
- edit: replace an exact string in a file; old_string must be unique unless
  replace_all is set. Read the file first and copy the text exactly.
- list: list a directory; glob: find files by pattern ("**/*.go");
  grep: search file contents with a regular expression.
- bash: run a shell command in the workspace (timeout, output is capped).
  Processes started in the background keep running for later commands.
- webfetch: fetch an http(s) URL as text.
- question: ask the user multiple-choice questions when you need a decision.

Some calls (shell commands, writes, edits, fetches) may need the user's
approval. If a call is rejected with feedback, follow the feedback. Prefer
edit over rewriting whole files, and check your work by running it.`, root))
}

// Request describes a tool call to the permission rules and to the person
// asked about it.
type Request struct {
	// Permission names what is asked for: bash, write, edit, webfetch, or
	// the tool's name.
	Permission string
	// Patterns are what the call acts on: the command, the path, the URL.
	// Rules match them and an "always" reply remembers them.
	Patterns []string
	// Metadata helps the person decide: a diff preview, a description.
	Metadata map[string]any
	// MustAsk is set for calls whose effect the patterns cannot capture
	// (a shell line with eval or a computed command name): allow rules do
	// not apply to them, deny rules still do, and an "always" reply is
	// taken as "once" because there is nothing safe to remember.
	MustAsk bool
}

// Requester is a tool that can describe a call before it runs. ok is false
// when the arguments are unusable; the call then needs no approval because
// it will fail without side effects.
type Requester interface {
	PermissionRequest(ctx context.Context, args json.RawMessage) (req Request, ok bool)
}

// tool is an agent.Tool made from a function, plus its permission request.
type tool[T any] struct {
	agent.Tool
	request func(context.Context, T) (Request, error)
}

// PermissionRequest implements Requester by decoding the arguments as the
// tool itself would.
func (t *tool[T]) PermissionRequest(ctx context.Context, raw json.RawMessage) (Request, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	var args T
	if err := json.Unmarshal(raw, &args); err != nil {
		return Request{}, false
	}
	req, err := t.request(ctx, args)
	if err != nil {
		return Request{}, false
	}
	if req.Metadata == nil {
		req.Metadata = map[string]any{}
	}
	return req, true
}

// newTool builds a tool with a derived schema. The tool definitions are
// fixed at compile time, so a schema error is a programming error.
func newTool[T any](name, description string, run func(context.Context, T) (string, error), request func(context.Context, T) (Request, error)) agent.Tool {
	return &tool[T]{Tool: agent.MustTool(name, description, run), request: request}
}

// capText cuts s to limit bytes at a line boundary when it can, and says so.
func capText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := s[:limit]
	if i := strings.LastIndexByte(cut, '\n'); i > limit/2 {
		cut = cut[:i+1]
	}
	return fmt.Sprintf("%s\n[output truncated: showing %d of %d bytes]", strings.TrimRight(cut, "\n"), len(cut), len(s))
}
