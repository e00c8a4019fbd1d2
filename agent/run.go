package agent

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/llm"
)

// toolGrace is how long a cancelled run waits for tools that ignore their
// context before it gives up on them.
const toolGrace = 2 * time.Second

// NewMessageID returns a fresh random message id.
func NewMessageID() string {
	return ids.Hex("msg_")
}

// Run appends input to conv and runs the agent until the model answers
// without calling tools, the context is cancelled, or the iteration bound is
// reached. Every message added to conv is also reported as an EventMessage;
// the last event is always an EventResult. Stopping the iteration early
// cancels the run. conv must not be used by others until the iteration ends.
func (a *Agent) Run(ctx context.Context, conv *Conversation, input []llm.Message, opts ...RunOption) iter.Seq[Event] {
	return func(yield func(Event) bool) {
		cfg := runConfig{now: func() int64 { return time.Now().UnixMilli() }}
		for _, o := range opts {
			o(&cfg)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if cfg.ask != nil {
			ctx = context.WithValue(ctx, askerKey{}, cfg.ask)
		}
		r := &run{a: a, conv: conv, cfg: &cfg, ctx: ctx, cancel: cancel, yield: yield, start: time.Now()}
		for _, m := range input {
			if m.Created == 0 {
				m.Created = cfg.now()
			}
			r.add(m)
		}
		res := r.loop()
		res.Duration = time.Since(r.start)
		r.emit(Event{Type: EventResult, Result: res})
	}
}

// Ask runs one prompt on a new conversation and returns the final text.
func (a *Agent) Ask(ctx context.Context, prompt string) (string, error) {
	var conv Conversation
	var res *Result
	for ev := range a.Run(ctx, &conv, []llm.Message{llm.UserText(prompt)}) {
		if ev.Type == EventResult {
			res = ev.Result
		}
	}
	if res == nil {
		return "", errors.New("run ended without a result")
	}
	if res.Status != StatusCompleted {
		if res.Err != nil {
			return res.Text, res.Err
		}
		return res.Text, fmt.Errorf("run %s", res.Status)
	}
	return res.Text, nil
}

type run struct {
	a       *Agent
	conv    *Conversation
	cfg     *runConfig
	ctx     context.Context
	cancel  context.CancelFunc
	yield   func(Event) bool
	stopped bool
	start   time.Time
	usage   llm.Usage
	cost    float64
}

// emit hands e to the consumer; once the consumer stops, the run is
// cancelled and later events are dropped.
func (r *run) emit(e Event) bool {
	if r.stopped {
		return false
	}
	if !r.yield(e) {
		r.stopped = true
		r.cancel()
		return false
	}
	return true
}

func (r *run) add(m llm.Message) {
	if m.ID == "" {
		m.ID = NewMessageID()
	}
	r.conv.Messages = append(r.conv.Messages, m)
	r.emit(Event{Type: EventMessage, Message: &m})
}

func (r *run) result(status Status, text string, err error, iterations int) *Result {
	return &Result{Status: status, Text: text, Err: err, Usage: r.usage, Cost: r.cost, Iterations: iterations}
}

func (r *run) loop() *Result {
	a := r.a
	specs := make([]llm.ToolSpec, len(a.tools))
	for i, t := range a.tools {
		specs[i] = t.Spec()
	}
	modelName := a.model.Name()
	for it := 1; ; it++ {
		if it > a.maxIterations {
			text := fmt.Sprintf("Task incomplete: maximum iterations (%d) reached.", a.maxIterations)
			return r.result(StatusMaxIterations, text, nil, it-1)
		}
		if r.ctx.Err() != nil {
			return r.result(StatusAborted, "", context.Cause(r.ctx), it-1)
		}
		r.emit(Event{Type: EventLLMCall, Iteration: it, Model: modelName})
		req := &llm.Request{System: a.systemPrompt, Messages: r.conv.Messages, Tools: specs, MaxTokens: a.maxTokens}
		created := r.cfg.now()
		t0 := time.Now()
		var partial strings.Builder
		resp, err := a.model.Generate(r.ctx, req, func(d llm.Delta) {
			if d.Text != "" {
				partial.WriteString(d.Text)
				r.emit(Event{Type: EventText, Text: d.Text, Iteration: it})
			}
		})
		if err != nil {
			if r.ctx.Err() != nil {
				if partial.Len() > 0 {
					r.add(llm.Message{Role: llm.RoleAssistant, Parts: []llm.Part{llm.TextPart(partial.String())},
						Model: modelName, Created: created, Completed: r.cfg.now()})
				}
				return r.result(StatusAborted, partial.String(), context.Cause(r.ctx), it)
			}
			return r.result(StatusFailed, partial.String(), err, it)
		}
		cost := a.registry.Cost(modelName, resp.Usage)
		r.usage.Add(resp.Usage)
		r.cost += cost
		msg := resp.Message
		msg.Role = llm.RoleAssistant
		msg.Model = modelName
		u := resp.Usage
		msg.Usage = &u
		msg.Cost = cost
		msg.Created = created
		msg.Completed = r.cfg.now()
		r.emit(Event{Type: EventLLMResult, Iteration: it, Model: modelName, Duration: time.Since(t0), Usage: resp.Usage, Cost: cost})
		r.add(msg)
		calls := msg.ToolCalls()
		if len(calls) == 0 {
			return r.result(StatusCompleted, msg.Text(), nil, it)
		}
		if status, err := r.tools(calls, it); status != "" {
			return r.result(status, "", err, it)
		}
	}
}

// tools runs one round of tool calls and appends their results. A non-empty
// status ends the run.
func (r *run) tools(calls []llm.ToolCall, it int) (Status, error) {
	outcomes := make([]*ToolOutcome, len(calls))
	for i := range calls {
		r.emit(Event{Type: EventToolCall, Iteration: it, ToolCall: &calls[i]})
	}
	var endTurn bool
	for i, c := range calls {
		if _, ok := r.a.byName[c.Name]; !ok {
			outcomes[i] = &ToolOutcome{CallID: c.ID, Name: c.Name, Status: ToolFailed,
				Err: fmt.Errorf("%w %q; available tools: %s", ErrUnknownTool, c.Name, strings.Join(r.a.ToolNames(), ", "))}
			continue
		}
		if r.cfg.approve == nil || endTurn {
			if endTurn {
				outcomes[i] = &ToolOutcome{CallID: c.ID, Name: c.Name, Status: ToolFailed, Err: errors.New("not run: an earlier tool call in this turn was rejected")}
			}
			continue
		}
		d, err := r.cfg.approve(r.ctx, c)
		switch {
		case err != nil:
			outcomes[i] = &ToolOutcome{CallID: c.ID, Name: c.Name, Status: ToolFailed, Err: fmt.Errorf("approval failed: %w", err)}
		case !d.Allow && d.Feedback != "":
			outcomes[i] = &ToolOutcome{CallID: c.ID, Name: c.Name, Status: ToolFailed,
				Err: fmt.Errorf("the user rejected this tool call with feedback: %s", d.Feedback)}
		case !d.Allow:
			outcomes[i] = &ToolOutcome{CallID: c.ID, Name: c.Name, Status: ToolFailed, Err: errors.New("the user rejected this tool call")}
			endTurn = true
		}
	}

	type done struct {
		i   int
		out *ToolOutcome
	}
	ch := make(chan done, len(calls))
	running := 0
	if r.ctx.Err() == nil {
		for i, c := range calls {
			if outcomes[i] != nil {
				continue
			}
			running++
			go func(i int, c llm.ToolCall, t Tool) {
				t0 := time.Now()
				out, err := callTool(r.ctx, t, c.Args)
				o := &ToolOutcome{CallID: c.ID, Name: c.Name, Status: ToolCompleted, Output: out, Duration: time.Since(t0)}
				if err != nil {
					o.Status, o.Err = ToolFailed, err
				}
				ch <- done{i, o}
			}(i, c, r.a.byName[c.Name])
		}
	}
	for i, o := range outcomes {
		if o != nil {
			r.emit(Event{Type: EventToolResult, Iteration: it, ToolCall: &calls[i], ToolResult: o})
		}
	}
	collect := func(d done) {
		running--
		outcomes[d.i] = d.out
		r.emit(Event{Type: EventToolResult, Iteration: it, ToolCall: &calls[d.i], ToolResult: d.out})
	}
	for running > 0 {
		select {
		case d := <-ch:
			collect(d)
		case <-r.ctx.Done():
			// The tools were told to stop; stragglers that ignore their
			// context get a grace period, then the run ends without them.
			timer := time.NewTimer(toolGrace)
			for running > 0 {
				select {
				case d := <-ch:
					collect(d)
				case <-timer.C:
					running = 0
				}
			}
			timer.Stop()
		}
	}
	aborted := r.ctx.Err() != nil
	msg := llm.Message{Role: llm.RoleTool, Created: r.cfg.now()}
	for i, c := range calls {
		o := outcomes[i]
		if o == nil {
			o = &ToolOutcome{CallID: c.ID, Name: c.Name, Status: ToolFailed, Err: errors.New("aborted")}
		}
		content := o.Output
		if o.Status == ToolFailed {
			content = "Error: " + o.Err.Error()
		}
		msg.Parts = append(msg.Parts, llm.Part{Type: llm.PartToolResult, ToolResult: &llm.ToolResult{
			CallID: c.ID, Name: c.Name, Content: content, IsError: o.Status == ToolFailed}})
	}
	msg.Completed = r.cfg.now()
	r.add(msg)
	switch {
	case aborted:
		return StatusAborted, context.Cause(r.ctx)
	case endTurn:
		return StatusRejected, errors.New("a tool call was rejected")
	}
	return "", nil
}
