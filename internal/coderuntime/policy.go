package coderuntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/coding"
	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/store"
)

// The coding permission rules as the engine's approval policy, and the
// control API's permissions and questions over the engine's requests.

// agentRules reads the rules "always" replies remembered for the whole
// agent.
func agentRules(ctx context.Context, st store.Store) ([]coding.Rule, error) {
	gs, err := st.Grants(ctx, "")
	if err != nil {
		return nil, err
	}
	return rulesOf(gs), nil
}

// approver is a turn's coding.Approver: the rules decide (the agent's,
// then what was remembered for this session alone), a person is asked
// through a permission request.
func (r *Runtime) approver(t *engine.Turn) agent.Approver {
	remembered, err := r.eng.Grants(r.ctx, t.SessionID)
	if err != nil {
		r.log.Error("reading the session's remembered rules", "session", t.SessionID, "err", err)
	}
	session := coding.NewSessionRules(rulesOf(remembered)...)
	return coding.NewApprover(coding.ApproverConfig{
		Rules:     r.rules,
		Session:   session,
		Tools:     r.tools,
		SessionID: t.SessionID,
		MessageID: t.MessageID,
		Ask: func(ctx context.Context, p coding.Permission) (coding.Reply, error) {
			data, err := json.Marshal(p)
			if err != nil {
				return coding.Reply{}, err
			}
			b, err := t.Ask(ctx, engine.AskRequest{ID: p.ID, Kind: kindPermission, CallID: p.Tool.CallID, Data: data})
			if err != nil {
				return coding.Reply{}, err
			}
			var rep coding.Reply
			if err := json.Unmarshal(b, &rep); err != nil {
				return coding.Reply{}, fmt.Errorf("permission reply: %w", err)
			}
			return rep, nil
		},
		OnRemember:        func(added []coding.Rule) { r.remember("", added) },
		OnRememberSession: func(added []coding.Rule) { r.remember(t.SessionID, added) },
	})
}

// remember persists the rules an "always" reply added: the agent's
// (scope "") or one session's.
func (r *Runtime) remember(scope string, added []coding.Rule) {
	gs := make([]store.Grant, len(added))
	for i, ru := range added {
		gs[i] = store.Grant{Scope: scope, Permission: ru.Permission, Pattern: ru.Pattern, Action: string(ru.Action)}
	}
	if err := r.eng.Grant(context.Background(), gs...); err != nil {
		r.log.Error("storing remembered rules", "scope", scope, "err", err)
	}
}

func rulesOf(gs []store.Grant) []coding.Rule {
	out := make([]coding.Rule, len(gs))
	for i, g := range gs {
		out[i] = coding.Rule{Permission: g.Permission, Pattern: g.Pattern, Action: coding.Action(g.Action)}
	}
	return out
}

// asker puts a turn's questions to a person as one question request.
func (r *Runtime) asker(t *engine.Turn) agent.Asker {
	return func(ctx context.Context, qs []agent.Question) ([][]string, error) {
		q := coding.PendingQuestion{ID: ids.Hex("q_"), SessionID: t.SessionID, Questions: qs}
		data, err := json.Marshal(q)
		if err != nil {
			return nil, err
		}
		b, err := t.Ask(ctx, engine.AskRequest{ID: q.ID, Kind: kindQuestion, Data: data})
		if err != nil {
			return nil, err
		}
		var answers [][]string
		if err := json.Unmarshal(b, &answers); err != nil {
			return nil, fmt.Errorf("answers: %w", err)
		}
		return answers, nil
	}
}

// Reply errors, mapped to 404, 409 and 400 by the HTTP layer.
var (
	ErrUnknownRequest = errors.New("not found")
	ErrAnswered       = errors.New("no longer pending")
	ErrBadReply       = errors.New("bad reply")
)

// replyErr words the engine's outcomes as the control API does.
func replyErr(kind, id string, err error) error {
	var se *store.StateError
	switch {
	case errors.Is(err, engine.ErrUnknownRequest):
		return fmt.Errorf("%s %s: %w", kind, id, ErrUnknownRequest)
	case errors.As(err, &se):
		return fmt.Errorf("%s %s is %w (it is %s)", kind, id, ErrAnswered, se.State)
	case errors.Is(err, engine.ErrNotPending):
		return fmt.Errorf("%s %s is %w", kind, id, ErrAnswered)
	}
	return err
}

// ReplyPermission answers a pending permission request.
func (r *Runtime) ReplyPermission(ctx context.Context, id string, rep coding.Reply) error {
	if err := rep.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	err = r.eng.Reply(ctx, engine.Answer{Kind: kindPermission, ID: id, State: "replied", Reply: b})
	return replyErr("permission", id, err)
}

// ReplyQuestion answers a pending question: one list of labels per
// question.
func (r *Runtime) ReplyQuestion(ctx context.Context, id string, answers [][]string) error {
	b, err := json.Marshal(answers)
	if err != nil {
		return err
	}
	err = r.eng.Reply(ctx, engine.Answer{Kind: kindQuestion, ID: id, State: "answered", Reply: b,
		Check: func(req store.Request) error {
			var q coding.PendingQuestion
			if err := json.Unmarshal(req.Data, &q); err != nil {
				return err
			}
			if err := coding.ValidateAnswers(q.Questions, answers); err != nil {
				return fmt.Errorf("%w: %w", ErrBadReply, err)
			}
			return nil
		}})
	return replyErr("question", id, err)
}

// Permissions lists the pending permission requests, oldest first.
func (r *Runtime) Permissions(ctx context.Context) ([]coding.Permission, error) {
	return pendingOf[coding.Permission](ctx, r, kindPermission)
}

// Questions lists the pending questions, oldest first.
func (r *Runtime) Questions(ctx context.Context) ([]coding.PendingQuestion, error) {
	return pendingOf[coding.PendingQuestion](ctx, r, kindQuestion)
}

func pendingOf[T any](ctx context.Context, r *Runtime, kind string) ([]T, error) {
	reqs, err := r.eng.Pending(ctx, kind, "")
	if err != nil {
		return nil, err
	}
	out := []T{}
	for _, q := range reqs {
		var v T
		if err := json.Unmarshal(q.Data, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
