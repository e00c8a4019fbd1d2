package engine

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/agenthost/agenthost/internal/store"
)

// The recorder commits the run of queued changes at its head in one
// transaction, each waiter told the outcome, and keeps a change that
// creates or asks in a transaction of its own; applied in order, the
// merged change has the same effect as the changes one by one.
func TestRecorderMergesQueuedChanges(t *testing.T) {
	r := newRecorder(nil, &live{id: "s"})
	r.draining = true // no drainer: next is called by hand
	ev := func(typ string) []store.Event {
		return []store.Event{{SessionID: "s", Type: typ, Data: json.RawMessage(`{}`)}}
	}
	row1, row2 := &store.Session{ID: "s", Result: "first"}, &store.Session{ID: "s", Result: "end"}

	r.post(store.Change{Events: ev("ModelCall")})
	r.post(store.Change{Update: row1, Messages: []store.Message{{SessionID: "s", ID: "m1"}}, Events: ev("MessageAdded")})
	end := r.enqueue(store.Change{Update: row2, Inputs: []store.Input{{ID: "m0", State: store.InputDone}}})
	r.post(store.Change{Events: ev("Titled")})
	ask := r.enqueue(store.Change{Requests: []store.Request{{ID: "r1"}}})
	after := r.enqueue(store.Change{Events: ev("TurnEnded")})

	it, ok := r.next()
	if !ok || it.done != nil || len(it.more) != 1 {
		t.Fatalf("first: ok %v, done %v, %d waiters", ok, it.done, len(it.more))
	}
	c := it.c
	var types []string
	for _, e := range c.Events {
		types = append(types, e.Type)
	}
	if c.Update != row2 || len(c.Messages) != 1 || len(c.Inputs) != 1 || len(types) != 3 ||
		types[0] != "ModelCall" || types[1] != "MessageAdded" || types[2] != "Titled" {
		t.Fatalf("merged change: update %+v, messages %v, inputs %v, events %v", c.Update, c.Messages, c.Inputs, types)
	}
	boom := errors.New("boom")
	for _, d := range it.more {
		d <- boom
	}
	if err := <-end; !errors.Is(err, boom) {
		t.Fatalf("the end's waiter got %v", err)
	}

	it, ok = r.next()
	if !ok || it.done == nil || len(it.more) != 0 || len(it.c.Requests) != 1 || len(it.c.Events) != 0 {
		t.Fatalf("a request is merged with its neighbours: %+v", it)
	}
	it.done <- nil
	if err := <-ask; err != nil {
		t.Fatal(err)
	}
	it, ok = r.next()
	if !ok || it.done == nil || len(it.c.Events) != 1 {
		t.Fatalf("last: %+v", it)
	}
	it.done <- nil
	<-after
	if _, ok := r.next(); ok || r.draining {
		t.Fatal("the queue is empty, yet next found more")
	}

	// Text goes out with events, not behind the turn's answer and end.
	r.draining = true
	r.post(store.Change{Events: ev("ModelResult")})
	r.push(recItem{c: store.Change{Events: ev("TextDelta")}, text: true})
	r.post(store.Change{Update: row1, Messages: []store.Message{{SessionID: "s", ID: "m2"}}})
	r.post(store.Change{Update: row2})
	if it, _ := r.next(); len(it.c.Events) != 2 || it.c.Update != nil || !it.text {
		t.Fatalf("text merged with a message: %+v", it.c)
	}
	if it, _ := r.next(); it.c.Update != row2 || len(it.c.Messages) != 1 {
		t.Fatalf("the message and the end: %+v", it.c)
	}
}

// A turn's events, its end included, reach its subscriber before its
// Handle is done, so a front end that stops reading at Done (host's MCP
// progress) has them all; and whoever reads TurnEnded finds the session
// free. TestMCPServerProgress caught the first when the end's events went
// out after Done.
func TestTurnEndAnnouncedBeforeDone(t *testing.T) {
	r := newRig(t, nil, &model{reply: echo}, nil)
	sub := NewSubscriber()
	h, err := r.e.Start(ctxT(t), userInput("", "hi"), sub)
	if err != nil {
		t.Fatal(err)
	}
	defer r.e.Unsubscribe(sub)
	<-h.Done()
	var types []string
	for drained := false; !drained; {
		select {
		case ev := <-sub.Events():
			types = append(types, ev.Type)
		default:
			drained = true
		}
	}
	if !slices.Contains(types, "ModelCall") || len(types) == 0 || types[len(types)-1] != "TurnEnded" {
		t.Fatalf("events buffered at Done: %v", types)
	}
	if _, err := r.e.Start(ctxT(t), userInput(h.SessionID, "again"), nil); err != nil {
		t.Fatalf("a second turn right after the first: %v", err)
	}
}
