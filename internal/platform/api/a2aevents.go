package api

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/agenthost/agenthost/internal/sse"
)

// The runtime's event stream, read for the A2A front end: what ends a
// task's wait, and the task's updates.

// --- the runtime's events ---

// runtimeEvent is one event of the runtime's stream.
type runtimeEvent struct {
	name string
	data map[string]any
}

func settled(e runtimeEvent) bool {
	switch e.name {
	case "status":
		busy, _ := e.data["busy"].(bool)
		return !busy
	case "permission", "question":
		return e.data["state"] == "pending"
	}
	return false
}

// eventStream reads the runtime's event stream (all the agent's sessions,
// from when it was opened).
type eventStream struct {
	ch     chan runtimeEvent
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *platformTasks) events(ctx context.Context) (*eventStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, release, err := p.s.callRuntime(ctx, p.agent, controlCall{method: http.MethodGet, path: "/events"})
	if err != nil {
		cancel()
		return nil, platformA2AError(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		release()
		cancel()
		return nil, fmt.Errorf("%w: the runtime's event stream answered %d", a2a.ErrServerError, resp.StatusCode)
	}
	es := &eventStream{ch: make(chan runtimeEvent), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(es.done)
		defer close(es.ch)
		defer release()
		defer resp.Body.Close()
		rd := sse.NewReader(resp.Body)
		for {
			ev, err := rd.Next()
			if err != nil {
				return
			}
			var data map[string]any
			if json.Unmarshal(ev.Data, &data) != nil {
				continue
			}
			select {
			case es.ch <- runtimeEvent{name: ev.Name, data: data}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return es, nil
}

func (es *eventStream) close() {
	es.cancel()
	<-es.done
}

// of yields the events of session sid until the stream ends.
func (es *eventStream) of(sid string) iter.Seq[runtimeEvent] {
	return func(yield func(runtimeEvent) bool) {
		for e := range es.ch {
			if e.data["sessionId"] != sid {
				continue
			}
			if !yield(e) {
				return
			}
		}
	}
}

// stream turns the session's events into the task's updates until it
// settles.
func (p *platformTasks) stream(ctx context.Context, t *a2a.Task, es *eventStream, yield func(a2a.Event, error) bool) {
	for e := range es.of(t.ContextID) {
		if e.name == "message.delta" {
			s, _ := e.data["text"].(string)
			up := a2a.NewStatusUpdateEvent(t, a2a.TaskStateWorking, a2a.NewMessageForTask(a2a.MessageRoleAgent, t, a2a.TextPart{Text: s}))
			up.Metadata = map[string]any{"agenthost": "text_delta"}
			if !yield(up, nil) {
				return
			}
			continue
		}
		if !settled(e) {
			continue
		}
		final, err := p.task(ctx, t.ID)
		if err != nil {
			yield(nil, err)
			return
		}
		for _, art := range final.Artifacts {
			if !yield(&a2a.TaskArtifactUpdateEvent{TaskID: t.ID, ContextID: t.ContextID, Artifact: art, LastChunk: true}, nil) {
				return
			}
		}
		yield(&a2a.TaskStatusUpdateEvent{TaskID: t.ID, ContextID: t.ContextID, Status: final.Status, Final: true}, nil)
		return
	}
	if ctx.Err() == nil {
		yield(nil, fmt.Errorf("%w: the runtime's event stream ended", a2a.ErrServerError))
	}
}
