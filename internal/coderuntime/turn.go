package coderuntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/coding"
	"github.com/agenthost/agenthost/llm"
)

// The events' data, as docs/runtime-control.md lists them.
type (
	statusEvent struct {
		SessionID string `json:"sessionId"`
		Busy      bool   `json:"busy"`
		AgentBusy bool   `json:"agentBusy"`
		Result    string `json:"result,omitempty"`
		Error     string `json:"error,omitempty"`
	}
	sessionEvent struct {
		SessionID string  `json:"sessionId"`
		Title     *string `json:"title"`
	}
	messageEvent struct {
		SessionID string  `json:"sessionId"`
		Message   Message `json:"message"`
	}
	deltaEvent struct {
		SessionID string `json:"sessionId"`
		Text      string `json:"text"`
	}
	permissionEvent struct {
		SessionID  string          `json:"sessionId"`
		State      string          `json:"state"`
		Permission json.RawMessage `json:"permission"`
		Reply      *coding.Reply   `json:"reply,omitempty"`
	}
	questionEvent struct {
		SessionID string          `json:"sessionId"`
		State     string          `json:"state"`
		Question  json.RawMessage `json:"question"`
		Answers   [][]string      `json:"answers,omitempty"`
	}
)

// resultInterrupted is the result of a turn a crash cut short.
const resultInterrupted = "interrupted"

// work runs s's queued messages one turn at a time until the queue is
// empty or the runtime closes.
func (r *Runtime) work(s *session) {
	defer r.wg.Done()
	r.mu.Lock()
	for {
		// Deciding to stop happens under the same lock as ending the last
		// turn, so nobody sees an idle session still running.
		if len(s.queue) == 0 || r.ctx.Err() != nil {
			s.running = false
			close(s.done)
			r.mu.Unlock()
			return
		}
		p := s.queue[0]
		s.queue = s.queue[1:]
		ctx, cancel := context.WithCancel(r.ctx)
		s.cancel = cancel
		turnDone := make(chan struct{})
		s.turnDone = turnDone
		r.mu.Unlock()

		res := r.turn(ctx, s, p)
		cancel()

		r.mu.Lock()
		s.cancel = nil
		ev := statusEvent{SessionID: s.id, Busy: len(s.queue) > 0, Result: string(res.Status)}
		if res.Err != nil && res.Status != agent.StatusCompleted {
			ev.Error = res.Err.Error()
		}
		var named *string
		if s.title == nil {
			t := title(p.Text)
			named = &t
		}
		ev.AgentBusy = ev.Busy || r.othersBusy(s)
		err := r.st.write(func(w *writer) error {
			if err := setPromptState(w, p.ID, promptDone); err != nil {
				return err
			}
			if named != nil {
				if _, err := w.exec(`UPDATE sessions SET title = ? WHERE id = ?`, *named, s.id); err != nil {
					return err
				}
				if err := w.event(s.id, "session", sessionEvent{SessionID: s.id, Title: named}); err != nil {
					return err
				}
			}
			return w.event(s.id, "status", ev)
		})
		if err != nil {
			r.log.Error("ending a turn", "session", s.id, "err", err)
		} else if named != nil {
			s.title = named
		}
		s.turnDone = nil
		close(turnDone)
	}
}

// turn runs one user message to the end and returns how it ended.
func (r *Runtime) turn(ctx context.Context, s *session, p storedPrompt) *agent.Result {
	if s.conv == nil {
		msgs, err := r.st.messages(s.id)
		if err != nil {
			return &agent.Result{Status: agent.StatusFailed, Err: fmt.Errorf("loading the session: %w", err)}
		}
		s.conv = &agent.Conversation{Messages: msgs}
	}
	user := llm.Message{ID: p.ID, Role: llm.RoleUser, Parts: []llm.Part{llm.TextPart(p.Text)}, Created: p.Created}
	// The user message is stored with the prompt's state change, so a
	// message marked running is always in the history.
	err := r.st.write(func(w *writer) error {
		if err := setPromptState(w, p.ID, promptRunning); err != nil {
			return err
		}
		if err := addMessage(w, s.id, user); err != nil {
			return err
		}
		if err := w.event(s.id, "status", statusEvent{SessionID: s.id, Busy: true, AgentBusy: true}); err != nil {
			return err
		}
		return w.event(s.id, "message", messageEvent{SessionID: s.id, Message: render([]llm.Message{user})[0]})
	})
	if err != nil {
		return &agent.Result{Status: agent.StatusFailed, Err: fmt.Errorf("storing the message: %w", err)}
	}
	s.conv.Messages = append(s.conv.Messages, user)

	callMsg := map[string]string{} // tool call id → assistant message id; run goroutine only
	approve := coding.NewApprover(coding.ApproverConfig{
		Rules:     r.rules,
		Tools:     r.tools,
		SessionID: s.id,
		MessageID: func(callID string) string { return callMsg[callID] },
		Ask:       r.askPermission(s.id),
		OnRemember: func(added []coding.Rule) {
			if err := r.st.addRules(added); err != nil {
				r.log.Error("storing remembered rules", "err", err)
			}
		},
	})
	var res *agent.Result
	deltas := &deltaBuf{r: r, sessionID: s.id}
	defer deltas.flush()
	// The tools run in this session's sandbox.
	ctx = coding.WithSession(ctx, s.id)
	for ev := range r.ag.Run(ctx, s.conv, nil, agent.WithApprover(approve), agent.WithAsker(r.askQuestion(s.id))) {
		switch ev.Type {
		case agent.EventText:
			deltas.add(ev.Text)
		case agent.EventMessage:
			m := *ev.Message
			for _, c := range m.ToolCalls() {
				callMsg[c.ID] = m.ID
			}
			shown := r.shown(s.conv.Messages, m)
			deltas.flushWith(func(w *writer) error {
				if err := addMessage(w, s.id, m); err != nil {
					return err
				}
				return w.event(s.id, "message", messageEvent{SessionID: s.id, Message: shown})
			})
		case agent.EventResult:
			res = ev.Result
		}
	}
	if res == nil {
		res = &agent.Result{Status: agent.StatusFailed, Err: errors.New("the run ended without a result")}
	}
	return res
}

// deltaWindow is how long text deltas are gathered into one event, so a
// fast model does not cost a transaction per word.
const deltaWindow = 25 * time.Millisecond

// deltaBuf gathers a turn's text deltas and stores them as one
// message.delta event per window. flush stores what is gathered at once;
// the turn calls it before storing a message, so deltas always come
// before the message they belong to.
type deltaBuf struct {
	r         *Runtime
	sessionID string
	writeMu   sync.Mutex // held while taking and storing, so flushes keep their order
	mu        sync.Mutex
	text      strings.Builder
	timer     *time.Timer
}

func (d *deltaBuf) add(text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.text.WriteString(text)
	if d.timer == nil {
		d.timer = time.AfterFunc(deltaWindow, d.flush)
	}
}

func (d *deltaBuf) flush() { d.flushWith(nil) }

// flushWith stores the gathered text and, in the same transaction, what
// also writes.
func (d *deltaBuf) flushWith(also func(w *writer) error) {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	d.mu.Lock()
	text := d.text.String()
	d.text.Reset()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.mu.Unlock()
	if text == "" && also == nil {
		return
	}
	d.r.record(d.sessionID, func(w *writer) error {
		if text != "" {
			if err := w.event(d.sessionID, "message.delta", deltaEvent{SessionID: d.sessionID, Text: text}); err != nil {
				return err
			}
		}
		if also != nil {
			return also(w)
		}
		return nil
	})
}

// record writes what a turn produced, logging failures: the turn goes on.
func (r *Runtime) record(sessionID string, fn func(w *writer) error) {
	if err := r.st.write(fn); err != nil {
		r.log.Error("storing a turn's progress", "session", sessionID, "err", err)
	}
}

// shown is how m appears in the history: a tool message shows as the
// assistant message whose calls it answers, with the results folded in.
func (r *Runtime) shown(conv []llm.Message, m llm.Message) Message {
	if m.Role != llm.RoleTool {
		return render([]llm.Message{m})[0]
	}
	for i := len(conv) - 1; i >= 0; i-- {
		if conv[i].Role == llm.RoleAssistant {
			out := render(append([]llm.Message{conv[i]}, m))
			return out[0]
		}
	}
	return Message{ID: m.ID, Info: MessageInfo{Role: string(llm.RoleAssistant), Parts: []Part{}}}
}

// wait blocks until a reply for request id arrives or ctx ends; on the
// latter the request is cancelled (abort) or expired (shutdown).
func (r *Runtime) wait(ctx context.Context, kind, id, sessionID string, ch chan any, data json.RawMessage) (any, error) {
	defer func() {
		r.mu.Lock()
		delete(r.waiters, id)
		r.mu.Unlock()
	}()
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
	}
	state := stateCancelled
	if r.ctx.Err() != nil {
		state = stateExpired
	}
	err := r.st.write(func(w *writer) error {
		if err := finishRequest(w, kind, id, state, nil); err != nil {
			return err
		}
		if kind == kindPermission {
			return w.event(sessionID, kind, permissionEvent{SessionID: sessionID, State: state, Permission: data})
		}
		return w.event(sessionID, kind, questionEvent{SessionID: sessionID, State: state, Question: data})
	})
	if err != nil && !errors.Is(err, errNotPending) {
		r.log.Error("cancelling a request", "id", id, "err", err)
	}
	select { // a reply that won the race still counts
	case v := <-ch:
		return v, nil
	default:
	}
	return nil, context.Cause(ctx)
}

// publish stores a pending request with its event and registers its
// waiter.
func (r *Runtime) publish(kind, id, sessionID, callID string, data json.RawMessage, event any) (chan any, error) {
	ch := make(chan any, 1)
	r.mu.Lock()
	r.waiters[id] = ch
	r.mu.Unlock()
	err := r.st.write(func(w *writer) error {
		if _, err := w.exec(`INSERT INTO requests (id, kind, session_id, call_id, data, state, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, kind, sessionID, callID, string(data), statePending, r.nowMS()); err != nil {
			return err
		}
		return w.event(sessionID, kind, event)
	})
	if err != nil {
		r.mu.Lock()
		delete(r.waiters, id)
		r.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

// askPermission is the coding.AskFunc of a session.
func (r *Runtime) askPermission(sessionID string) coding.AskFunc {
	return func(ctx context.Context, p coding.Permission) (coding.Reply, error) {
		data, err := json.Marshal(p)
		if err != nil {
			return coding.Reply{}, err
		}
		ch, err := r.publish(kindPermission, p.ID, sessionID, p.Tool.CallID, data,
			permissionEvent{SessionID: sessionID, State: statePending, Permission: data})
		if err != nil {
			return coding.Reply{}, fmt.Errorf("storing the permission request: %w", err)
		}
		v, err := r.wait(ctx, kindPermission, p.ID, sessionID, ch, data)
		if err != nil {
			return coding.Reply{}, err
		}
		return v.(coding.Reply), nil
	}
}

// askQuestion is the agent.Asker of a session.
func (r *Runtime) askQuestion(sessionID string) agent.Asker {
	return func(ctx context.Context, qs []agent.Question) ([][]string, error) {
		q := coding.PendingQuestion{ID: newID("q_"), SessionID: sessionID, Questions: qs}
		data, err := json.Marshal(q)
		if err != nil {
			return nil, err
		}
		ch, err := r.publish(kindQuestion, q.ID, sessionID, "", data,
			questionEvent{SessionID: sessionID, State: statePending, Question: data})
		if err != nil {
			return nil, fmt.Errorf("storing the question: %w", err)
		}
		v, err := r.wait(ctx, kindQuestion, q.ID, sessionID, ch, data)
		if err != nil {
			return nil, err
		}
		return v.([][]string), nil
	}
}

// Reply errors, mapped to 404, 409 and 400 by the HTTP layer.
var (
	ErrUnknownRequest = errors.New("not found")
	ErrAnswered       = errors.New("no longer pending")
	ErrBadReply       = errors.New("bad reply")
)

// replyErr maps the store's outcomes onto the exported errors.
func replyErr(kind, id string, err error) error {
	switch {
	case errors.Is(err, errNoRequest):
		return fmt.Errorf("%s %s: %w", kind, id, ErrUnknownRequest)
	case errors.Is(err, errNotPending):
		return fmt.Errorf("%s %s is %w (%s)", kind, id, ErrAnswered, strings.TrimPrefix(err.Error(), errNotPending.Error()+": "))
	}
	return err
}

// deliver hands v to the waiter of id, if it is still waiting.
func (r *Runtime) deliver(id string, v any) {
	r.mu.Lock()
	ch := r.waiters[id]
	r.mu.Unlock()
	if ch == nil {
		r.log.Warn("a reply found nobody waiting", "id", id)
		return
	}
	select {
	case ch <- v:
	default:
	}
}

// ReplyPermission answers a pending permission request.
func (r *Runtime) ReplyPermission(id string, rep coding.Reply) error {
	if err := rep.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	err := r.st.write(func(w *writer) error {
		if err := finishRequest(w, kindPermission, id, stateReplied, rep); err != nil {
			return err
		}
		var sid, data string
		if err := w.tx.QueryRow(`SELECT session_id, data FROM requests WHERE id = ?`, id).Scan(&sid, &data); err != nil {
			return err
		}
		return w.event(sid, kindPermission, permissionEvent{SessionID: sid, State: stateReplied, Permission: json.RawMessage(data), Reply: &rep})
	})
	if err != nil {
		return replyErr("permission", id, err)
	}
	r.deliver(id, rep)
	return nil
}

// ReplyQuestion answers a pending question: one list of labels per
// question.
func (r *Runtime) ReplyQuestion(id string, answers [][]string) error {
	req, err := r.st.request(kindQuestion, id)
	if err != nil {
		return replyErr("question", id, err)
	}
	if req.State != statePending {
		return replyErr("question", id, fmt.Errorf("%w: it is %s", errNotPending, req.State))
	}
	var q coding.PendingQuestion
	if err := json.Unmarshal(req.Data, &q); err != nil {
		return err
	}
	if err := coding.ValidateAnswers(q.Questions, answers); err != nil {
		return fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	err = r.st.write(func(w *writer) error {
		if err := finishRequest(w, kindQuestion, id, stateAnswered, answers); err != nil {
			return err
		}
		return w.event(req.SessionID, kindQuestion, questionEvent{SessionID: req.SessionID, State: stateAnswered, Question: req.Data, Answers: answers})
	})
	if err != nil {
		return replyErr("question", id, err)
	}
	r.deliver(id, answers)
	return nil
}

// Permissions lists the pending permission requests, oldest first.
func (r *Runtime) Permissions() ([]coding.Permission, error) {
	reqs, err := r.st.requests(kindPermission, statePending)
	if err != nil {
		return nil, err
	}
	out := []coding.Permission{}
	for _, q := range reqs {
		var p coding.Permission
		if err := json.Unmarshal(q.Data, &p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Questions lists the pending questions, oldest first.
func (r *Runtime) Questions() ([]coding.PendingQuestion, error) {
	reqs, err := r.st.requests(kindQuestion, statePending)
	if err != nil {
		return nil, err
	}
	out := []coding.PendingQuestion{}
	for _, q := range reqs {
		var p coding.PendingQuestion
		if err := json.Unmarshal(q.Data, &p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
