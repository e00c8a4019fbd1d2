package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/store"
)

func ev(sessionID, typ string) store.Event {
	return store.Event{SessionID: sessionID, Type: typ, Data: json.RawMessage(`{}`), Created: t0}
}

func msg(sessionID, id string) store.Message {
	return store.Message{SessionID: sessionID, ID: id, Data: json.RawMessage(fmt.Sprintf(`{"id":%q,"role":"user"}`, id))}
}

func testApplyAtomic(t *testing.T, s store.Store) {
	ss := session("0xa", store.StatusRunning, t0)
	ss.Title = "Build a REST API"
	ss.Error = "openai: HTTP 401: invalid key"
	evs, err := s.Apply(ctx, store.Change{Create: &ss, Messages: []store.Message{msg(ss.ID, "m1")},
		Inputs: []store.Input{{ID: "in1", SessionID: ss.ID, Data: json.RawMessage(`{}`), State: store.InputRunning, Created: t0}},
		Events: []store.Event{ev(ss.ID, "status"), ev(ss.ID, "message")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].ID == 0 || evs[1].ID <= evs[0].ID {
		t.Fatalf("events: %+v", evs)
	}
	got, err := s.GetSession(ctx, ss.ID)
	if err != nil {
		t.Fatal(err)
	}
	equalSession(t, got, ss)
	// A change that fails part-way writes nothing: the resolution of an
	// unknown request rolls back the message and the event before it.
	_, err = s.Apply(ctx, store.Change{Messages: []store.Message{msg(ss.ID, "m2")}, Events: []store.Event{ev(ss.ID, "message")},
		Resolve: []store.Resolution{{ID: "perm_none", Kind: "permission", State: "replied"}}})
	if !errors.Is(err, store.ErrNoRequest) {
		t.Fatalf("resolving an unknown request: %v, want ErrNoRequest", err)
	}
	if ms, _ := s.Messages(ctx, ss.ID); len(ms) != 1 {
		t.Fatalf("a failed change left %d messages", len(ms))
	}
	if all, _ := s.Events(ctx, ss.ID, 0, 0); len(all) != 2 {
		t.Fatalf("a failed change left %d events", len(all))
	}
	if _, err := s.Apply(ctx, store.Change{Create: &ss}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("creating twice: %v", err)
	}
	ghost := session("", store.StatusDone, t0)
	if _, err := s.Apply(ctx, store.Change{Update: &ghost}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("updating a missing session: %v", err)
	}
}

func testMessages(t *testing.T, s store.Store) {
	a := mustCreate(t, s, session("", store.StatusRunning, t0))
	b := mustCreate(t, s, session("", store.StatusRunning, t0))
	for i := 0; i < 3; i++ {
		if _, err := s.Apply(ctx, store.Change{Messages: []store.Message{msg(a.ID, fmt.Sprint("a", i)), msg(b.ID, fmt.Sprint("b", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	failed := store.Message{SessionID: a.ID, ID: "a3", Data: json.RawMessage(`{"role":"assistant"}`), Error: "rate limited"}
	if _, err := s.Apply(ctx, store.Change{Messages: []store.Message{failed}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Messages(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].ID != "a0" || got[2].ID != "a2" || got[3].Error != "rate limited" || got[0].Error != "" {
		t.Fatalf("messages of a: %+v", got)
	}
	if !jsonEqual(got[1].Data, msg(a.ID, "a1").Data) {
		t.Fatalf("data: %s", got[1].Data)
	}
	// Replace: the conversation is the client's copy from now on.
	b.Status = store.StatusDone
	if _, err := s.Apply(ctx, store.Change{Update: &b, Replace: true, Messages: []store.Message{msg(b.ID, "x")}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Messages(ctx, b.ID); len(got) != 1 || got[0].ID != "x" {
		t.Fatalf("after replace: %+v", got)
	}
	if got, _ := s.Messages(ctx, "unknown"); got == nil || len(got) != 0 {
		t.Fatalf("unknown session: %+v", got)
	}
}

func testInputs(t *testing.T, s store.Store) {
	a := mustCreate(t, s, session("", store.StatusRunning, t0))
	b := mustCreate(t, s, session("", store.StatusRunning, t0))
	in := func(id, sid string, st store.InputState) store.Input {
		return store.Input{ID: id, SessionID: sid, Data: json.RawMessage(`{"role":"user"}`), State: st, Created: t0}
	}
	for _, x := range []store.Input{in("1", a.ID, store.InputQueued), in("2", b.ID, store.InputQueued), in("3", a.ID, store.InputQueued)} {
		if _, err := s.Apply(ctx, store.Change{Inputs: []store.Input{x}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Apply(ctx, store.Change{Inputs: []store.Input{in("1", a.ID, store.InputRunning)}}); err != nil {
		t.Fatal(err)
	}
	q, err := s.Inputs(ctx, store.InputQueued)
	if err != nil || len(q) != 2 || q[0].ID != "2" || q[1].ID != "3" || !q[0].Created.Equal(t0) || !jsonEqual(q[0].Data, json.RawMessage(`{"role":"user"}`)) {
		t.Fatalf("queued: %+v %v", q, err)
	}
	if r, _ := s.Inputs(ctx, store.InputRunning); len(r) != 1 || r[0].ID != "1" || r[0].SessionID != a.ID {
		t.Fatalf("running: %+v", r)
	}
	if _, err := s.Apply(ctx, store.Change{DiscardQueued: a.ID}); err != nil {
		t.Fatal(err)
	}
	if q, _ := s.Inputs(ctx, store.InputQueued); len(q) != 1 || q[0].ID != "2" {
		t.Fatalf("after discarding a's queue: %+v", q)
	}
	if d, _ := s.Inputs(ctx, store.InputDiscarded); len(d) != 1 || d[0].ID != "3" {
		t.Fatalf("discarded: %+v", d)
	}
}

func testRequests(t *testing.T, s store.Store) {
	a := mustCreate(t, s, session("", store.StatusRunning, t0))
	req := func(id, kind string, at time.Time) store.Request {
		return store.Request{ID: id, Kind: kind, SessionID: a.ID, CallID: "call_" + id, Data: json.RawMessage(`{"id":"` + id + `"}`), State: store.RequestPending, Created: at}
	}
	if _, err := s.Apply(ctx, store.Change{Requests: []store.Request{req("p2", "permission", t0.Add(time.Second)), req("p1", "permission", t0), req("q1", "question", t0)}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Requests(ctx, "permission", store.RequestPending)
	if err != nil || len(got) != 2 || got[0].ID != "p1" || got[1].ID != "p2" || got[0].CallID != "call_p1" || !got[0].Created.Equal(t0) {
		t.Fatalf("pending permissions: %+v %v", got, err)
	}
	reply := json.RawMessage(`{"reply":"once"}`)
	if _, err := s.Apply(ctx, store.Change{Resolve: []store.Resolution{{ID: "p1", Kind: "permission", State: "replied", Reply: reply}}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Request(ctx, "permission", "p1")
	if err != nil || r.State != "replied" || !jsonEqual(r.Reply, reply) {
		t.Fatalf("after the reply: %+v %v", r, err)
	}
	_, err = s.Apply(ctx, store.Change{Resolve: []store.Resolution{{ID: "p1", Kind: "permission", State: "replied", Reply: reply}}})
	var se *store.StateError
	if !errors.Is(err, store.ErrNotPending) || !errors.As(err, &se) || se.State != "replied" {
		t.Fatalf("second reply: %v, want ErrNotPending naming replied", err)
	}
	// A request of another kind is unknown under this kind.
	if _, err := s.Apply(ctx, store.Change{Resolve: []store.Resolution{{ID: "q1", Kind: "permission", State: "replied"}}}); !errors.Is(err, store.ErrNoRequest) {
		t.Fatalf("wrong kind: %v", err)
	}
	if _, err := s.Request(ctx, "question", "nope"); !errors.Is(err, store.ErrNoRequest) {
		t.Fatalf("unknown request: %v", err)
	}
	if got, _ := s.Requests(ctx, "question", store.RequestPending); len(got) != 1 || len(got[0].Reply) != 0 {
		t.Fatalf("pending questions: %+v", got)
	}
	if got, _ := s.Requests(ctx, "", store.RequestPending); len(got) != 2 || got[0].ID != "q1" && got[1].ID != "q1" {
		t.Fatalf("pending of every kind: %+v", got)
	}
}

func testGrants(t *testing.T, s store.Store) {
	g := []store.Grant{{Permission: "bash", Pattern: "git status", Action: "allow"}, {Scope: "ses_1", Permission: "bash", Pattern: "ls", Action: "allow"}}
	if _, err := s.Apply(ctx, store.Change{Grants: g}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, store.Change{Grants: g[:1]}); err != nil { // the same grant again is kept once
		t.Fatal(err)
	}
	got, err := s.Grants(ctx)
	if err != nil || len(got) != 2 || got[0] != g[0] || got[1] != g[1] {
		t.Fatalf("grants: %+v %v", got, err)
	}
	if got, _ := s.Grants(ctx, "ses_1"); len(got) != 1 || got[0] != g[1] {
		t.Fatalf("grants of ses_1: %+v", got)
	}
	if got, _ := s.Grants(ctx, "", "ses_2"); len(got) != 1 || got[0] != g[0] {
		t.Fatalf("agent-wide grants and ses_2's: %+v", got)
	}
}

func testEventLog(t *testing.T, s store.Store) {
	if id, err := s.LastEventID(ctx); err != nil || id != 0 {
		t.Fatalf("empty log: %d %v", id, err)
	}
	a := mustCreate(t, s, session("", store.StatusRunning, t0))
	b := mustCreate(t, s, session("", store.StatusRunning, t0))
	var all []store.Event
	for i := 0; i < 4; i++ {
		evs, err := s.Apply(ctx, store.Change{Events: []store.Event{ev(a.ID, "a"), ev(b.ID, "b")}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
	}
	got, err := s.Events(ctx, "", all[2].ID, 3)
	if err != nil || len(got) != 3 || got[0].ID != all[3].ID || got[0].SessionID != b.ID || got[1].SessionID != a.ID {
		t.Fatalf("every session's events: %+v %v", got, err)
	}
	if id, _ := s.LastEventID(ctx); id != all[7].ID {
		t.Fatalf("last id %d, want %d", id, all[7].ID)
	}
	if err := s.PruneEvents(ctx, 3); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Events(ctx, "", 0, 0)
	if len(got) != 3 || got[0].ID != all[5].ID {
		t.Fatalf("after pruning to 3: %+v", got)
	}
	if id, _ := s.LastEventID(ctx); id != all[7].ID {
		t.Fatalf("pruning moved the last id to %d", id)
	}
}

func testListOldestFirst(t *testing.T, s store.Store) {
	var want []string
	for i := 0; i < 3; i++ {
		want = append(want, mustCreate(t, s, session("0xo", store.StatusDone, t0.Add(time.Duration(i)*time.Second))).ID)
	}
	got, err := s.ListSessions(ctx, store.ListOptions{Owner: "0xo", OldestFirst: true, Limit: -1})
	if err != nil || len(got) != 3 || got[0].ID != want[0] || got[2].ID != want[2] {
		t.Fatalf("oldest first: %v %v, want %v", ids(got), err, want)
	}
}
