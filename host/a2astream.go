package host

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"math"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/agenthost/agenthost/internal/a2amap"
)

// Following a session's events for A2A: the task's updates are its run's
// events, translated.

// --- following a session's events ---

// a2aFollower follows a session's events from the moment it was made.
type a2aFollower struct {
	s     *Server
	sid   string
	owner string
	sub   *subscriber
	last  int64
}

// follow subscribes to session sid, which the caller must be allowed to
// see, from now on.
func (h *a2aTasks) follow(ctx context.Context, sid string, c a2aCall) (*a2aFollower, error) {
	ss, err := h.s.eng.getSession(ctx, c.caller, sid)
	if err != nil {
		return nil, a2aError(err)
	}
	f := &a2aFollower{s: h.s, sid: sid, owner: ss.Owner, sub: newSubscriber()}
	if _, err := h.s.eng.subscribe(ctx, sid, ss.Owner, f.sub, math.MaxInt64); err != nil {
		return nil, a2aError(err)
	}
	return f, nil
}

func (f *a2aFollower) close() {
	if f != nil && f.sub != nil {
		f.s.eng.unsubscribe(f.sub)
		f.sub = nil
	}
}

// events yields the session's events as they come until ctx ends; a
// follower that fell behind catches up from the store.
func (f *a2aFollower) events(ctx context.Context) iter.Seq[event] {
	return func(yield func(event) bool) {
		for {
			select {
			case ev := <-f.sub.Events():
				if ev.ID <= f.last {
					continue
				}
				f.last = ev.ID
				if !yield(ev) {
					return
				}
			case <-f.sub.Overflow():
				f.s.eng.unsubscribe(f.sub)
				f.sub = newSubscriber()
				after := f.last
				if after == 0 {
					// Nothing seen yet: the log before this run is not
					// ours to replay; look at the task instead.
					after = math.MaxInt64
				}
				replay, err := f.s.eng.subscribe(ctx, f.sid, f.owner, f.sub, after)
				if err != nil {
					return
				}
				if after == math.MaxInt64 && !yield(event{Type: a2aCheck}) {
					return
				}
				for _, ev := range replay {
					f.last = ev.ID
					if !yield(ev) {
						return
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}
}

// a2aCheck is the event a follower yields when it lost events it cannot
// replay: the task is to be read again.
const a2aCheck = "a2a_check"

// stream translates the session's events into the task's updates until
// the task settles.
func (h *a2aTasks) stream(ctx context.Context, c a2aCall, t *a2a.Task, f *a2aFollower, yield func(a2a.Event, error) bool) {
	for ev := range f.events(ctx) {
		var fields map[string]any
		_ = json.Unmarshal(ev.Data, &fields)
		switch ev.Type {
		case "STREAM":
			chunk, _ := fields["chunk"].(string)
			up := a2a.NewStatusUpdateEvent(t, a2a.TaskStateWorking, a2amap.AgentMessage(t, chunk))
			up.Metadata = map[string]any{"agenthost": "text_delta"}
			if !yield(up, nil) {
				return
			}
		case "tool_call":
			up := a2a.NewStatusUpdateEvent(t, a2a.TaskStateWorking, a2amap.AgentMessage(t, fmt.Sprintf("calling the tool %v", fields["name"])))
			up.Metadata = map[string]any{"agenthost": "tool_call"}
			if !yield(up, nil) {
				return
			}
		case kindApproval, kindAsk, "OUTPUT", "ERROR", a2aCheck:
			final, err := h.task(ctx, c, t.ID)
			if err != nil {
				yield(nil, err)
				return
			}
			if ev.Type == a2aCheck && !final.Status.State.Terminal() && final.Status.State != a2a.TaskStateInputRequired {
				continue
			}
			if final.Status.State == a2a.TaskStateWorking && (ev.Type == kindApproval || ev.Type == kindAsk) {
				// The question is recorded with the event.
				final.Status.State = a2a.TaskStateInputRequired
				final.Status.Message = questionMessage(t, ev.Type, ev.Data)
			}
			for _, art := range final.Artifacts {
				if !yield(&a2a.TaskArtifactUpdateEvent{TaskID: t.ID, ContextID: t.ContextID, Artifact: art, LastChunk: true}, nil) {
					return
				}
			}
			up := &a2a.TaskStatusUpdateEvent{TaskID: t.ID, ContextID: t.ContextID, Status: final.Status, Final: true}
			yield(up, nil)
			return
		}
	}
	if ctx.Err() == nil {
		yield(nil, fmt.Errorf("%w: the task's event stream ended", a2a.ErrServerError))
	}
}
