// Package storetest is the conformance suite every store.Store backend
// runs, so the host can rely on the same behaviour from each.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/store"
)

// Run runs the suite. newStore returns an empty store of its own for each
// subtest; the suite closes it.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"Update", testUpdate},
		{"List", testList},
		{"Events", testEvents},
		{"EventsConcurrent", testEventsConcurrent},
		{"InterruptRunning", testInterruptRunning},
		{"DeleteExpired", testDeleteExpired},
		{"ApplyAtomic", testApplyAtomic},
		{"Messages", testMessages},
		{"Inputs", testInputs},
		{"Requests", testRequests},
		{"Grants", testGrants},
		{"EventLog", testEventLog},
		{"ListOldestFirst", testListOldestFirst},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// t0 has millisecond precision, as stores keep times.
var t0 = time.Date(2025, 1, 15, 10, 30, 0, 123_000_000, time.UTC)

var seq atomic.Int64

func newID() string { return fmt.Sprintf("s-%d", seq.Add(1)) }

var ctx = context.Background()

func session(owner string, status store.Status, created time.Time) store.Session {
	return store.Session{
		ID: newID(), Owner: owner, Status: status, Prompt: "hello", Result: "hi",
		State:   json.RawMessage(`{"messages":[],"turn":1}`),
		Created: created, Updated: created, Duration: 1500 * time.Millisecond,
	}
}

func mustCreate(t *testing.T, s store.Store, ss store.Session) store.Session {
	t.Helper()
	if err := s.CreateSession(ctx, ss); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return ss
}

func equalSession(t *testing.T, got, want store.Session) {
	t.Helper()
	if got.ID != want.ID || got.Owner != want.Owner || got.Status != want.Status || got.Prompt != want.Prompt ||
		got.Result != want.Result || !got.Created.Equal(want.Created) || !got.Updated.Equal(want.Updated) ||
		!got.Expires.Equal(want.Expires) || got.Duration != want.Duration || got.Title != want.Title || got.Error != want.Error {
		t.Fatalf("session:\n got %+v\nwant %+v", got, want)
	}
	if !jsonEqual(got.State, want.State) {
		t.Fatalf("state: got %s, want %s", got.State, want.State)
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func testCreateGet(t *testing.T, s store.Store) {
	ss := mustCreate(t, s, session("0xabc", store.StatusRunning, t0))
	got, err := s.GetSession(ctx, ss.ID)
	if err != nil {
		t.Fatal(err)
	}
	equalSession(t, got, ss)
	if err := s.CreateSession(ctx, ss); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second CreateSession: got %v, want ErrExists", err)
	}
	if _, err := s.GetSession(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSession(unknown): got %v, want ErrNotFound", err)
	}
	empty := session("", store.StatusRunning, t0)
	empty.State = nil
	mustCreate(t, s, empty)
	got, err = s.GetSession(ctx, empty.ID)
	if err != nil || len(got.State) != 0 {
		t.Fatalf("nil state: %v %q", err, got.State)
	}
}

func testUpdate(t *testing.T, s store.Store) {
	ss := mustCreate(t, s, session("", store.StatusRunning, t0))
	ss.Status, ss.Result, ss.Updated = store.StatusDone, "done!", t0.Add(time.Second)
	ss.Expires = t0.Add(time.Hour)
	ss.State = json.RawMessage(`{"turn":2}`)
	if err := s.UpdateSession(ctx, ss); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSession(ctx, ss.ID)
	if err != nil {
		t.Fatal(err)
	}
	equalSession(t, got, ss)
	ghost := session("", store.StatusDone, t0)
	if err := s.UpdateSession(ctx, ghost); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateSession(unknown): got %v, want ErrNotFound", err)
	}
}

func testList(t *testing.T, s store.Store) {
	a1 := mustCreate(t, s, session("0xa", store.StatusDone, t0))
	a2 := mustCreate(t, s, session("0xa", store.StatusRunning, t0.Add(time.Second)))
	anon := mustCreate(t, s, session("", store.StatusDone, t0.Add(2*time.Second)))
	mustCreate(t, s, session("0xb", store.StatusDone, t0.Add(3*time.Second)))

	got, err := s.ListSessions(ctx, store.ListOptions{Owner: "0xa"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != a2.ID || got[1].ID != a1.ID {
		t.Fatalf("owner 0xa: got %v, want [%s %s] newest first", ids(got), a2.ID, a1.ID)
	}
	got, _ = s.ListSessions(ctx, store.ListOptions{Owner: ""})
	if len(got) != 1 || got[0].ID != anon.ID {
		t.Fatalf("anonymous: got %v, want [%s]", ids(got), anon.ID)
	}
	got, _ = s.ListSessions(ctx, store.ListOptions{All: true})
	if len(got) != 4 {
		t.Fatalf("all: got %d sessions, want 4", len(got))
	}
	got, _ = s.ListSessions(ctx, store.ListOptions{All: true, Limit: 2})
	if len(got) != 2 {
		t.Fatalf("limit 2: got %d", len(got))
	}
}

func ids(ss []store.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func testEvents(t *testing.T, s store.Store) {
	a := mustCreate(t, s, session("", store.StatusRunning, t0))
	b := mustCreate(t, s, session("", store.StatusRunning, t0))
	var last int64
	for i := 0; i < 5; i++ {
		evs, err := s.AppendEvents(ctx, []store.Event{
			{SessionID: a.ID, Type: "STREAM", Data: json.RawMessage(fmt.Sprintf(`{"chunk":"%d"}`, i)), Created: t0},
			{SessionID: b.ID, Type: "tool_call", Data: json.RawMessage(`{}`), Created: t0},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || evs[0].ID <= last || evs[1].ID <= evs[0].ID {
			t.Fatalf("ids do not grow: last %d, got %d %d", last, evs[0].ID, evs[1].ID)
		}
		last = evs[1].ID
	}
	all, err := s.Events(ctx, a.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 {
		t.Fatalf("got %d events of a, want 5", len(all))
	}
	for i, e := range all {
		if e.SessionID != a.ID || e.Type != "STREAM" || !jsonEqual(e.Data, json.RawMessage(fmt.Sprintf(`{"chunk":"%d"}`, i))) || !e.Created.Equal(t0) {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	after, _ := s.Events(ctx, a.ID, all[2].ID, 0)
	if len(after) != 2 || after[0].ID != all[3].ID {
		t.Fatalf("after %d: got %d events", all[2].ID, len(after))
	}
	lim, _ := s.Events(ctx, a.ID, 0, 2)
	if len(lim) != 2 || lim[1].ID != all[1].ID {
		t.Fatalf("limit 2: got %d", len(lim))
	}
	none, err := s.Events(ctx, "unknown", 0, 0)
	if err != nil || len(none) != 0 {
		t.Fatalf("unknown session: %v %v", none, err)
	}
}

func testEventsConcurrent(t *testing.T, s store.Store) {
	ss := mustCreate(t, s, session("", store.StatusRunning, t0))
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.AppendEvents(ctx, []store.Event{{SessionID: ss.ID, Type: "STREAM", Data: json.RawMessage(`{}`), Created: t0}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	evs, err := s.Events(ctx, ss.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != writers*each {
		t.Fatalf("got %d events, want %d", len(evs), writers*each)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].ID <= evs[i-1].ID {
			t.Fatalf("ids out of order at %d", i)
		}
	}
}

func testInterruptRunning(t *testing.T, s store.Store) {
	run := mustCreate(t, s, session("", store.StatusRunning, t0))
	wait := mustCreate(t, s, session("", store.StatusWaitingApproval, t0))
	done := session("", store.StatusDone, t0)
	done.Expires = t0.Add(time.Hour)
	mustCreate(t, s, done)
	now, exp := t0.Add(time.Minute), t0.Add(25*time.Hour)
	n, err := s.InterruptRunning(ctx, now, exp)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("interrupted %d, want 2", n)
	}
	for _, id := range []string{run.ID, wait.ID} {
		got, _ := s.GetSession(ctx, id)
		if got.Status != store.StatusInterrupted || !got.Updated.Equal(now) || !got.Expires.Equal(exp) {
			t.Fatalf("after InterruptRunning: %+v", got)
		}
	}
	got, _ := s.GetSession(ctx, done.ID)
	equalSession(t, got, done)
}

func testDeleteExpired(t *testing.T, s store.Store) {
	old := session("", store.StatusDone, t0)
	old.Expires = t0.Add(time.Hour)
	mustCreate(t, s, old)
	fresh := session("", store.StatusFailed, t0)
	fresh.Expires = t0.Add(3 * time.Hour)
	mustCreate(t, s, fresh)
	// A running session whose (stale) Expires passed must survive.
	running := session("", store.StatusRunning, t0)
	running.Expires = t0.Add(time.Minute)
	mustCreate(t, s, running)
	if _, err := s.AppendEvents(ctx, []store.Event{{SessionID: old.ID, Type: "OUTPUT", Data: json.RawMessage(`{}`), Created: t0}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, store.Change{Messages: []store.Message{msg(old.ID, "m"), msg(fresh.ID, "m")}}); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteExpired(ctx, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("deleted %d, want 1", n)
	}
	if _, err := s.GetSession(ctx, old.ID); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, store.ErrExpired) {
		t.Fatalf("expired session: %v, want ErrExpired (an ErrNotFound)", err)
	}
	if _, err := s.GetSession(ctx, "never-was"); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
		t.Fatalf("unknown session: %v, want ErrNotFound only", err)
	}
	if evs, _ := s.Events(ctx, old.ID, 0, 0); len(evs) != 0 {
		t.Fatalf("expired session's events still there: %d", len(evs))
	}
	if ms, _ := s.Messages(ctx, old.ID); len(ms) != 0 {
		t.Fatalf("expired session's messages still there: %d", len(ms))
	}
	if ms, _ := s.Messages(ctx, fresh.ID); len(ms) != 1 {
		t.Fatalf("a live session's messages went with the expired one: %d", len(ms))
	}
	for _, id := range []string{fresh.ID, running.ID} {
		if _, err := s.GetSession(ctx, id); err != nil {
			t.Fatalf("session %s: %v", id, err)
		}
	}
	// The reservation itself ends after ExpiredIDRetention.
	if _, err := s.DeleteExpired(ctx, old.Expires.Add(store.ExpiredIDRetention+time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, old.ID); errors.Is(err, store.ErrExpired) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired id after its retention: %v, want plain ErrNotFound", err)
	}
}
