package coding

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/llm"
)

// Permission is a pending permission request, in the shape the platform
// API lists it (seed 003): a person sees it, replies once, always or
// reject, and the paused agent resumes.
type Permission struct {
	ID        string `json:"id"`
	SessionID string `json:"sessionID"`
	// Permission names what is asked for: bash, write, edit, webfetch...
	Permission string `json:"permission"`
	// Patterns are the commands, paths or URLs the call acts on.
	Patterns []string `json:"patterns"`
	// Metadata helps the person decide (diff, description, command).
	Metadata map[string]any `json:"metadata"`
	// Always is false when the request is made; a runtime that keeps
	// answered requests may set it to record an "always" reply.
	Always bool    `json:"always"`
	Tool   ToolRef `json:"tool"`
}

// ToolRef names the tool call a Permission is about.
type ToolRef struct {
	MessageID string `json:"messageID"`
	CallID    string `json:"callID"`
}

// ReplyKind is a person's answer to a Permission.
type ReplyKind string

// The replies of seed 003.
const (
	// ReplyOnce allows this one call.
	ReplyOnce ReplyKind = "once"
	// ReplyAlways allows this call and remembers its patterns for the
	// rest of the runtime's life (and beyond, if the runtime persists
	// Rules.Remembered).
	ReplyAlways ReplyKind = "always"
	// ReplyReject refuses the call. With a message the agent reads it and
	// carries on; without one the turn ends.
	ReplyReject ReplyKind = "reject"
)

// Reply is the body of a permission reply.
type Reply struct {
	Reply   ReplyKind `json:"reply"`
	Message string    `json:"message,omitempty"`
	// Scope says for whom an "always" is remembered: "session" for the
	// request's session alone (what a session page's reply is), "agent" or
	// "" for every session of the agent.
	Scope string `json:"scope,omitempty"`
}

// The scopes of an "always" reply.
const (
	ScopeAgent   = "agent"
	ScopeSession = "session"
)

// ErrBadReply is wrapped by Validate's error, which an HTTP layer maps to
// 400.
var ErrBadReply = errors.New("reply must be once, always or reject")

// Validate checks the reply kind and scope.
func (r Reply) Validate() error {
	switch r.Reply {
	case ReplyOnce, ReplyAlways, ReplyReject:
	default:
		return fmt.Errorf("%w, not %q", ErrBadReply, r.Reply)
	}
	switch r.Scope {
	case "", ScopeAgent, ScopeSession:
		return nil
	}
	return fmt.Errorf("%w: scope must be %q or %q, not %q", ErrBadReply, ScopeAgent, ScopeSession, r.Scope)
}

// Decision maps the reply onto the agent loop: once and always allow; a
// rejection carries its message as feedback, and one without a message
// stops the turn.
func (r Reply) Decision() agent.Decision {
	if r.Reply == ReplyOnce || r.Reply == ReplyAlways {
		return agent.Decision{Allow: true}
	}
	return agent.Decision{Feedback: strings.TrimSpace(r.Message)}
}

// AskFunc publishes a pending permission and blocks until a person replies
// or ctx is done. The runtime implements it; the platform's GET
// .../permissions lists what is pending and POST .../reply answers.
type AskFunc func(ctx context.Context, p Permission) (Reply, error)

// ApproverConfig wires an approver into one run.
type ApproverConfig struct {
	// Rules is the runtime's policy, shared by its sessions; nil uses the
	// defaults (a fresh set, so "always" is then forgotten after the run).
	Rules *Rules
	// Tools are the agent's tools; those implementing Requester describe
	// their calls. Any other tool is asked about under its own name with
	// the pattern "*".
	Tools []agent.Tool
	// SessionID is copied into each Permission.
	SessionID string
	// MessageID returns the id of the assistant message holding a call;
	// the runtime knows it from the run's message events. Optional.
	MessageID func(callID string) string
	// NewID makes permission ids; nil uses random "perm_" ids.
	NewID func() string
	// Ask reaches a person. Nil means nobody can approve: calls needing
	// approval are rejected with feedback, and the agent carries on.
	Ask AskFunc
	// OnRemember is told the rules an "always" reply added, to persist
	// them. Optional.
	OnRemember func(added []Rule)
	// Session holds what "always" replies of scope "session" remembered
	// for this session alone; it is consulted after Rules. With nil, such
	// replies count as "once": nothing is remembered beyond the call.
	Session *Rules
	// OnRememberSession is told the rules a session-scoped "always"
	// added. Optional.
	OnRememberSession func(added []Rule)
}

// NewApprover returns the agent.Approver that puts every tool call through
// the rules: deny rejects it with a message the model reads, allow runs it,
// ask publishes a Permission through cfg.Ask and waits for the reply.
func NewApprover(cfg ApproverConfig) agent.Approver {
	if cfg.Rules == nil {
		cfg.Rules, _ = NewRules()
	}
	if cfg.NewID == nil {
		cfg.NewID = newPermissionID
	}
	byName := make(map[string]agent.Tool, len(cfg.Tools))
	for _, t := range cfg.Tools {
		byName[t.Spec().Name] = t
	}
	return func(ctx context.Context, call llm.ToolCall) (agent.Decision, error) {
		req := Request{Permission: call.Name, Patterns: []string{"*"}, Metadata: map[string]any{}}
		if t, ok := byName[call.Name]; ok {
			if rq, ok := t.(Requester); ok {
				r, ok := rq.PermissionRequest(ctx, call.Args)
				if !ok {
					// The call cannot run; let the tool explain why.
					return agent.Decision{Allow: true}, nil
				}
				req = r
			}
		}
		act, rule := cfg.Rules.EvaluateWith(cfg.Session, req.Permission, req.Patterns...)
		if act == Allow && req.MustAsk {
			act = Ask
		}
		switch act {
		case Allow:
			return agent.Decision{Allow: true}, nil
		case Deny:
			return agent.Decision{Feedback: fmt.Sprintf("%s %s is denied by the permission rule %s %q; do not retry it, find another way or ask the user",
				req.Permission, quoteAll(req.Patterns), rule.Permission, rule.Pattern)}, nil
		}
		if cfg.Ask == nil {
			return agent.Decision{Feedback: fmt.Sprintf("%s %s needs a person's approval and nobody can approve it in this run",
				req.Permission, quoteAll(req.Patterns))}, nil
		}
		p := Permission{
			ID:         cfg.NewID(),
			SessionID:  cfg.SessionID,
			Permission: req.Permission,
			Patterns:   req.Patterns,
			Metadata:   req.Metadata,
			Tool:       ToolRef{CallID: call.ID},
		}
		if cfg.MessageID != nil {
			p.Tool.MessageID = cfg.MessageID(call.ID)
		}
		reply, err := cfg.Ask(ctx, p)
		if err != nil {
			return agent.Decision{}, fmt.Errorf("permission %s: %w", p.ID, err)
		}
		if err := reply.Validate(); err != nil {
			return agent.Decision{}, fmt.Errorf("permission %s: %w", p.ID, err)
		}
		switch {
		case reply.Reply != ReplyAlways || req.MustAsk:
		case reply.Scope == ScopeSession && cfg.Session != nil:
			added := cfg.Session.Remember(req.Permission, req.Patterns...)
			if cfg.OnRememberSession != nil && len(added) > 0 {
				cfg.OnRememberSession(added)
			}
		case reply.Scope == ScopeSession:
			// Nowhere to keep it for the session alone: it stays "once".
		default:
			added := cfg.Rules.Remember(req.Permission, req.Patterns...)
			if cfg.OnRemember != nil && len(added) > 0 {
				cfg.OnRemember(added)
			}
		}
		return reply.Decision(), nil
	}
}

func quoteAll(ps []string) string {
	q := make([]string, len(ps))
	for i, p := range ps {
		q[i] = fmt.Sprintf("%q", p)
	}
	return strings.Join(q, ", ")
}

func newPermissionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "perm_" + hex.EncodeToString(b[:])
}
