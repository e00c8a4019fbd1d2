package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
	"go.opentelemetry.io/otel/trace"
)

// runInput is one prompt to run, from any transport.
type runInput struct {
	caller    Caller
	sessionID string
	session   *Session
	prompt    string
	// parts are images and notes about uploaded files, after the prompt.
	parts []llm.Part
	// interactive runs have someone to approve tools and answer
	// questions (a WebSocket client); others refuse such calls.
	interactive bool
	// issued: sessionID is the id CONNECTED gave this caller for a new
	// session on this connection (see hostEngine.sessionFor).
	issued bool
	// mustExist: a named session that is not the caller's is a 404
	// (ErrUnknownSession) rather than a new session, unless the client
	// passes back its copy of the conversation to continue from.
	mustExist bool
	// uploads is the caller's upload directory, which the run's tools
	// may read (UploadsDir).
	uploads string
}

// outcome is how a run ended, as transports report it.
type outcome struct {
	Status   store.Status
	Result   string
	Err      error
	Duration time.Duration
	Session  *Session
}

// runHandle is a started run.
type runHandle struct {
	sessionID   string
	serverNewer bool
	h           *engine.Handle
}

// done is closed when the run has ended and its last event is delivered.
func (h *runHandle) done() <-chan struct{} { return h.h.Done() }

// out is how the run ended, once done is closed.
func (h *runHandle) out() outcome {
	o := h.h.Outcome()
	return outcome{Status: o.Status, Result: o.Text, Err: o.Err, Duration: o.Duration, Session: sessionOf(h.sessionID, h.h.State())}
}

// The kinds of request a host run makes of a person, named as the events
// that announce them.
const (
	kindApproval = "approval_needed"
	kindAsk      = "ask_user"
)

// approvalResponse is APPROVAL_RESPONSE, as the request's reply.
type approvalResponse struct {
	Approved bool   `json:"approved"`
	Scope    string `json:"scope,omitempty"`
	Feedback string `json:"feedback,omitempty"`
}

// start admits a run: it finds the session (sessionFor), and the engine
// reserves it (ErrBusy if it has a run), waits for a worker
// (ErrOverloaded past the queue), records the input and starts the run
// detached from ctx, which only bounds the wait. sub, if not nil, is
// subscribed before the first event.
func (e *hostEngine) start(ctx context.Context, in runInput, sub *subscriber) (*runHandle, error) {
	r, err := e.resolve(ctx, in.caller, in.sessionID, in.session, in.issued)
	if err == nil && r.named != "" && in.mustExist && r.stored == nil && !r.replace {
		err = unknownSession(r.named)
	}
	if err != nil {
		return nil, err
	}
	input := engine.Input{SessionID: r.sess.SessionID, Owner: in.caller.Address, Prompt: in.prompt, Attended: in.interactive,
		Data:    turnData{uploads: in.uploads, trace: trace.SpanContextFromContext(ctx), requestID: obs.RequestID(ctx)},
		Message: llm.Message{Role: llm.RoleUser, Parts: append([]llm.Part{llm.TextPart(in.prompt)}, in.parts...)}}
	if r.replace {
		input.Replace = &engine.State{Messages: r.sess.Messages, Turn: r.sess.Turn, Iteration: r.sess.Iteration, Updated: r.sess.Updated}
	}
	h, err := e.core.Start(ctx, input, sub)
	if err != nil {
		return nil, err
	}
	return &runHandle{sessionID: r.sess.SessionID, serverNewer: r.newer, h: h}, nil
}

// answer delivers an APPROVAL_RESPONSE or ASK_USER_RESPONSE to the run of
// the session the caller owns, which must be waiting for that kind of
// answer.
func (e *hostEngine) answer(ctx context.Context, id string, caller Caller, kind string, reply any) error {
	state := "replied"
	if kind == kindAsk {
		state = "answered"
	}
	b, err := json.Marshal(reply)
	if err != nil {
		return err
	}
	return e.core.ReplyWaiting(ctx, id, caller.Address, kind, state, b)
}

// rawArgs keeps valid JSON arguments as they are and wraps anything else
// in a string, so an event always encodes.
func rawArgs(b json.RawMessage) any {
	if len(b) == 0 {
		return map[string]any{}
	}
	if json.Valid(b) {
		return b
	}
	return string(b)
}

// approver asks the client about tools that need approval
// (WithApproval): a tool approved with scope "session" is granted for the
// rest of the session.
func (e *hostEngine) approver(t *engine.Turn) agent.Approver {
	rt := e.srv.current()
	if rt.needs == nil {
		return nil
	}
	return func(ctx context.Context, call llm.ToolCall) (agent.Decision, error) {
		if !rt.needs(call) {
			return agent.Decision{Allow: true}, nil
		}
		grants, err := e.core.Grants(ctx, t.SessionID)
		if err != nil {
			return agent.Decision{}, err
		}
		for _, g := range grants {
			if g.Permission == call.Name && g.Action == "allow" {
				return agent.Decision{Allow: true}, nil
			}
		}
		if !t.Attended {
			return agent.Decision{Feedback: fmt.Sprintf("tool %s needs a person's approval, and this request came over plain HTTP where nobody can give it; tell the user to use the WebSocket API (/ws or /docs) for this", call.Name)}, nil
		}
		fields := map[string]any{"tool": call.Name, "arguments": rawArgs(call.Args), "tool_id": call.ID}
		if d := rt.toolDescription(call.Name); d != "" {
			fields["description"] = d
		}
		data, err := json.Marshal(fields)
		if err != nil {
			return agent.Decision{}, err
		}
		b, err := t.Ask(ctx, engine.AskRequest{ID: ids.Hex("appr_"), Kind: kindApproval, CallID: call.ID, Data: data, Timeout: rt.approveFor})
		if err != nil {
			return agent.Decision{}, err
		}
		var r approvalResponse
		if err := json.Unmarshal(b, &r); err != nil {
			return agent.Decision{}, fmt.Errorf("approval reply: %w", err)
		}
		if r.Approved && r.Scope == "session" {
			if err := e.core.Grant(ctx, store.Grant{Scope: t.SessionID, Permission: call.Name, Pattern: "*", Action: "allow"}); err != nil {
				e.log.Error("remembering an approval", "session", t.SessionID, "err", err)
			}
		}
		return agent.Decision{Allow: r.Approved, Feedback: r.Feedback}, nil
	}
}

// asker puts a tool's questions to the client, one ask_user per question;
// runs nobody attends get agent.ErrNoPerson.
func (e *hostEngine) asker(t *engine.Turn) agent.Asker {
	if !t.Attended {
		return nil
	}
	rt := e.srv.current()
	return func(ctx context.Context, qs []agent.Question) ([][]string, error) {
		out := make([][]string, 0, len(qs))
		for _, q := range qs {
			opts := make([]string, len(q.Options))
			for i, o := range q.Options {
				opts[i] = o.Label
			}
			text := q.Question
			if q.Header != "" {
				text = q.Header + ": " + text
			}
			data, err := json.Marshal(map[string]any{"text": text, "options": opts, "multi_select": q.MultiSelect})
			if err != nil {
				return nil, err
			}
			b, err := t.Ask(ctx, engine.AskRequest{ID: ids.Hex("ask_"), Kind: kindAsk, Data: data, Timeout: rt.approveFor})
			if err != nil {
				return nil, err
			}
			var a []string
			if err := json.Unmarshal(b, &a); err != nil {
				return nil, fmt.Errorf("answer: %w", err)
			}
			out = append(out, a)
		}
		return out, nil
	}
}

// turnData is what a host run carries for its tools.
type turnData struct {
	uploads   string
	trace     trace.SpanContext // the span of the request that sent the input
	requestID string            // that request's id, for the turn's log lines
}

// traceParent is the span a turn's span continues.
func traceParent(t *engine.Turn) trace.SpanContext {
	d, _ := t.Data.(turnData)
	return d.trace
}

type uploadsKey struct{}

// turnContext gives a run's tools what UploadsDir returns, and the run's
// log lines the id of the request that sent its input.
func turnContext(ctx context.Context, t *engine.Turn) context.Context {
	d, ok := t.Data.(turnData)
	if !ok {
		return ctx
	}
	if d.uploads != "" {
		ctx = context.WithValue(ctx, uploadsKey{}, d.uploads)
	}
	if d.requestID != "" {
		ctx = obs.WithRequestID(ctx, d.requestID)
	}
	return ctx
}

// ErrNoUploads is returned by UploadsDir outside a hosted run.
var ErrNoUploads = errors.New("no uploads here: files are uploaded with a request to a hosted agent")

// UploadsDir returns, inside a tool call of a hosted run, the directory
// holding the files the calling client uploaded (the host saves them there
// and tells the model their paths). Tools confined to it, such as
// agent/fstools' read_file, let the agent read its caller's uploads and no
// one else's. It has the signature of fstools.Root.
func UploadsDir(ctx context.Context) (string, error) {
	if d, ok := ctx.Value(uploadsKey{}).(string); ok {
		return d, nil
	}
	return "", ErrNoUploads
}
