// Package storetest is the conformance suite every store.Store
// implementation runs: the same behaviour, down to error values and
// ordering, from SQLite and PostgreSQL.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/platform/store"
)

// Run runs the suite. newStore returns an empty store of its own for each
// subtest; the suite closes it.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"Orgs", testOrgs},
		{"Tokens", testTokens},
		{"Scopes", testScopes},
		{"ScopeDelete", testScopeDelete},
		{"Secrets", testSecrets},
		{"SecretsConcurrent", testSecretsConcurrent},
		{"Agents", testAgents},
		{"AgentLimitConcurrent", testAgentLimitConcurrent},
		{"UploadBytes", testUploadBytes},
		{"Isolation", testIsolation},
		{"Meta", testMeta},
		{"Nodes", testNodes},
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

// t0 is a fixed time with millisecond precision, as the store keeps it.
var t0 = time.Date(2025, 1, 15, 10, 30, 0, 123_000_000, time.UTC)

var seq atomic.Int64

func id(prefix string) string { return fmt.Sprintf("%s%d", prefix, seq.Add(1)) }

func ctx() context.Context { return context.Background() }

func mustOrg(t *testing.T, s store.Store, name string) store.Org {
	t.Helper()
	o := store.Org{ID: id("org"), Name: name + id("-"), CreatedAt: t0}
	if err := s.CreateOrg(ctx(), o); err != nil {
		t.Fatalf("CreateOrg: %v", err)
	}
	return o
}

func mustScope(t *testing.T, s store.Store, org, name string) store.Scope {
	t.Helper()
	sc := store.Scope{ID: id("scope"), OrgID: org, Name: name, CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateScope(ctx(), sc); err != nil {
		t.Fatalf("CreateScope: %v", err)
	}
	return sc
}

func mustSecret(t *testing.T, s store.Store, org, scope, key, value string) store.Secret {
	t.Helper()
	sec, _, err := s.PutSecret(ctx(), store.Secret{ID: id("sec"), OrgID: org, ScopeID: scope, Key: key, Ciphertext: []byte(value), CreatedAt: t0, UpdatedAt: t0})
	if err != nil {
		t.Fatalf("PutSecret: %v", err)
	}
	return sec
}

func newAgent(org, scope string) store.Agent {
	return store.Agent{
		ID: id("agent"), OrgID: org, Name: "a", ScopeID: scope, Model: "offline/demo",
		InitialPrompt: "build", HiddenPrompt: "be terse", Status: store.StatusProvisioning,
		MCPServers:   json.RawMessage(`{"gh":{"type":"local","command":["gh-mcp"],"environment":{"GH_TOKEN":"{env:GH_TOKEN}"}}}`),
		ControlToken: []byte{1, 2, 3, 0, 255}, Node: "node-1", CreatedAt: t0, UpdatedAt: t0,
	}
}

func mustAgent(t *testing.T, s store.Store, org, scope string) store.Agent {
	t.Helper()
	a := newAgent(org, scope)
	if err := s.CreateAgent(ctx(), a, 0); err != nil {
		t.Fatalf("CreateAgent: %v", err)
	}
	return a
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

func testOrgs(t *testing.T, s store.Store) {
	o := mustOrg(t, s, "acme")
	wantErr(t, s.CreateOrg(ctx(), store.Org{ID: id("org"), Name: o.Name, CreatedAt: t0}), store.ErrConflict, "duplicate name")
	got, err := s.OrgByName(ctx(), o.Name)
	if err != nil || got != o {
		t.Fatalf("OrgByName = %+v, %v; want %+v", got, err, o)
	}
	got, err = s.OrgByID(ctx(), o.ID)
	if err != nil || got != o {
		t.Fatalf("OrgByID = %+v, %v; want %+v", got, err, o)
	}
	_, err = s.OrgByName(ctx(), "nope")
	wantErr(t, err, store.ErrNotFound, "OrgByName missing")
	_, err = s.OrgByID(ctx(), "nope")
	wantErr(t, err, store.ErrNotFound, "OrgByID missing")

	if err := s.SetOrgDefaultModel(ctx(), o.ID, "openai/gpt-4o-mini"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.OrgByID(ctx(), o.ID); got.DefaultModel != "openai/gpt-4o-mini" {
		t.Fatalf("DefaultModel = %q after set", got.DefaultModel)
	}
	if got, _ := s.OrgByName(ctx(), o.Name); got.DefaultModel != "openai/gpt-4o-mini" {
		t.Fatalf("OrgByName: DefaultModel = %q after set", got.DefaultModel)
	}
	if err := s.SetOrgDefaultModel(ctx(), o.ID, ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.OrgByID(ctx(), o.ID); got.DefaultModel != "" {
		t.Fatalf("DefaultModel = %q after clearing", got.DefaultModel)
	}
	wantErr(t, s.SetOrgDefaultModel(ctx(), "nope", "x/y"), store.ErrNotFound, "SetOrgDefaultModel missing")
}

func testTokens(t *testing.T, s store.Store) {
	o := mustOrg(t, s, "acme")
	tok := store.Token{ID: id("tok"), OrgID: o.ID, Label: "prod", Hash: bytes.Repeat([]byte{7}, 32), CreatedAt: t0}
	if err := s.CreateToken(ctx(), tok); err != nil {
		t.Fatal(err)
	}
	tok2 := store.Token{ID: id("tok"), OrgID: o.ID, Label: "ci", Hash: bytes.Repeat([]byte{8}, 32), CreatedAt: t0.Add(time.Second)}
	if err := s.CreateToken(ctx(), tok2); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateToken(ctx(), store.Token{ID: id("tok"), OrgID: "missing", Hash: []byte{9}, CreatedAt: t0}), store.ErrNotFound, "token of missing org")

	got, err := s.TokenByHash(ctx(), tok.Hash)
	if err != nil || got.ID != tok.ID || got.OrgID != o.ID || got.Label != "prod" || !got.CreatedAt.Equal(t0) || !got.LastUsedAt.IsZero() {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	_, err = s.TokenByHash(ctx(), []byte("nope"))
	wantErr(t, err, store.ErrNotFound, "TokenByHash missing")

	used := t0.Add(time.Hour)
	if err := s.TouchToken(ctx(), tok.ID, used); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.TouchToken(ctx(), "missing", used), store.ErrNotFound, "TouchToken missing")
	list, err := s.ListTokens(ctx(), o.ID)
	if err != nil || len(list) != 2 || list[0].ID != tok.ID || list[1].ID != tok2.ID {
		t.Fatalf("ListTokens = %+v, %v", list, err)
	}
	if !list[0].LastUsedAt.Equal(used) {
		t.Fatalf("LastUsedAt = %v, want %v", list[0].LastUsedAt, used)
	}

	other := mustOrg(t, s, "other")
	wantErr(t, s.DeleteToken(ctx(), other.ID, tok.ID), store.ErrNotFound, "DeleteToken from another org")
	if err := s.DeleteToken(ctx(), o.ID, tok.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.TokenByHash(ctx(), tok.Hash)
	wantErr(t, err, store.ErrNotFound, "TokenByHash after delete")
	wantErr(t, s.DeleteToken(ctx(), o.ID, tok.ID), store.ErrNotFound, "DeleteToken twice")
}

func testScopes(t *testing.T, s store.Store) {
	o := mustOrg(t, s, "acme")
	desc := "Production environment"
	prod := store.Scope{ID: id("scope"), OrgID: o.ID, Name: "production", Description: &desc, CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateScope(ctx(), prod); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateScope(ctx(), store.Scope{ID: id("scope"), OrgID: o.ID, Name: "production", CreatedAt: t0, UpdatedAt: t0}), store.ErrConflict, "duplicate scope")
	// Created a second later: ListScopes orders by creation time, and ids
	// from the shared counter do not sort as numbers ("scope10" < "scope8").
	staging := store.Scope{ID: id("scope"), OrgID: o.ID, Name: "staging", CreatedAt: t0.Add(time.Second), UpdatedAt: t0.Add(time.Second)}
	if err := s.CreateScope(ctx(), staging); err != nil {
		t.Fatal(err)
	}

	mustAgent(t, s, o.ID, prod.ID)
	mustAgent(t, s, o.ID, prod.ID)
	mustAgent(t, s, o.ID, "")
	mustSecret(t, s, o.ID, prod.ID, "K", "v")

	got, err := s.GetScope(ctx(), o.ID, prod.ID)
	if err != nil || got.Name != "production" || got.Description == nil || *got.Description != desc ||
		got.AgentCount != 2 || got.SecretCount != 1 || !got.CreatedAt.Equal(t0) {
		t.Fatalf("GetScope = %+v, %v", got, err)
	}
	byName, err := s.ScopeByName(ctx(), o.ID, "staging")
	if err != nil || byName.ID != staging.ID || byName.Description != nil || byName.AgentCount != 0 {
		t.Fatalf("ScopeByName = %+v, %v", byName, err)
	}
	_, err = s.ScopeByName(ctx(), o.ID, "nope")
	wantErr(t, err, store.ErrNotFound, "ScopeByName missing")
	list, err := s.ListScopes(ctx(), o.ID)
	if err != nil || len(list) != 2 || list[0].ID != prod.ID || list[0].AgentCount != 2 || list[1].ID != staging.ID {
		t.Fatalf("ListScopes = %+v, %v", list, err)
	}
	refs, err := s.ScopeAgents(ctx(), o.ID, prod.ID)
	if err != nil || len(refs) != 2 || refs[0].Status != store.StatusProvisioning {
		t.Fatalf("ScopeAgents = %+v, %v", refs, err)
	}

	later := t0.Add(24 * time.Hour)
	name := "prod"
	up, err := s.UpdateScope(ctx(), o.ID, prod.ID, store.ScopeUpdate{Name: &name, UpdatedAt: later})
	if err != nil || up.Name != "prod" || up.Description == nil || *up.Description != desc || !up.UpdatedAt.Equal(later) || !up.CreatedAt.Equal(t0) {
		t.Fatalf("UpdateScope name = %+v, %v", up, err)
	}
	up, err = s.UpdateScope(ctx(), o.ID, prod.ID, store.ScopeUpdate{ClearDescription: true, UpdatedAt: later})
	if err != nil || up.Description != nil {
		t.Fatalf("UpdateScope clear = %+v, %v", up, err)
	}
	d2 := "new"
	up, err = s.UpdateScope(ctx(), o.ID, prod.ID, store.ScopeUpdate{Description: &d2, UpdatedAt: later})
	if err != nil || up.Description == nil || *up.Description != "new" || up.Name != "prod" {
		t.Fatalf("UpdateScope description = %+v, %v", up, err)
	}
	taken := "staging"
	_, err = s.UpdateScope(ctx(), o.ID, prod.ID, store.ScopeUpdate{Name: &taken, UpdatedAt: later})
	wantErr(t, err, store.ErrConflict, "rename onto a taken name")
	_, err = s.UpdateScope(ctx(), o.ID, "missing", store.ScopeUpdate{Name: &name, UpdatedAt: later})
	wantErr(t, err, store.ErrNotFound, "UpdateScope missing")
	_, err = s.UpdateScope(ctx(), o.ID, "missing", store.ScopeUpdate{UpdatedAt: later})
	wantErr(t, err, store.ErrNotFound, "UpdateScope missing, no fields")
}

func testScopeDelete(t *testing.T, s store.Store) {
	o := mustOrg(t, s, "acme")
	sc := mustScope(t, s, o.ID, "production")
	a := mustAgent(t, s, o.ID, sc.ID)
	orgLevel := mustSecret(t, s, o.ID, "", "SHARED", "org-value")
	mustSecret(t, s, o.ID, sc.ID, "SHARED", "scope-value")
	moved := mustSecret(t, s, o.ID, sc.ID, "ONLY_SCOPED", "x")

	if err := s.DeleteScope(ctx(), o.ID, sc.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteScope(ctx(), o.ID, sc.ID), store.ErrNotFound, "DeleteScope twice")
	_, err := s.GetScope(ctx(), o.ID, sc.ID)
	wantErr(t, err, store.ErrNotFound, "GetScope after delete")
	got, err := s.GetAgent(ctx(), o.ID, a.ID)
	if err != nil || got.ScopeID != "" {
		t.Fatalf("agent after scope delete = %+v, %v; want org-level", got, err)
	}
	secs, err := s.ListSecrets(ctx(), o.ID, "")
	if err != nil || len(secs) != 2 {
		t.Fatalf("org secrets after scope delete = %+v, %v", secs, err)
	}
	if secs[0].Key != "ONLY_SCOPED" || secs[0].ID != moved.ID || secs[1].ID != orgLevel.ID || string(secs[1].Ciphertext) != "org-value" {
		t.Fatalf("org secrets after scope delete = %+v; the org-level SHARED must win", secs)
	}
	// The freed name can be used again.
	mustScope(t, s, o.ID, "production")
}

func testSecrets(t *testing.T, s store.Store) {
	o := mustOrg(t, s, "acme")
	sc := mustScope(t, s, o.ID, "production")
	first := store.Secret{ID: id("sec"), OrgID: o.ID, Key: "API_KEY", Ciphertext: []byte{0, 1, 2}, CreatedAt: t0, UpdatedAt: t0}
	got, created, err := s.PutSecret(ctx(), first)
	if err != nil || !created || got.ID != first.ID {
		t.Fatalf("PutSecret create = %+v, %v, %v", got, created, err)
	}
	later := t0.Add(time.Minute)
	got, created, err = s.PutSecret(ctx(), store.Secret{ID: id("sec"), OrgID: o.ID, Key: "API_KEY", Ciphertext: []byte{9}, CreatedAt: later, UpdatedAt: later})
	if err != nil || created || got.ID != first.ID || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(later) {
		t.Fatalf("PutSecret update = %+v, %v, %v; want same id, created false", got, created, err)
	}
	// The same key in a scope is another secret.
	scoped, created, err := s.PutSecret(ctx(), store.Secret{ID: id("sec"), OrgID: o.ID, ScopeID: sc.ID, Key: "API_KEY", Ciphertext: []byte{5}, CreatedAt: t0, UpdatedAt: t0})
	if err != nil || !created || scoped.ID == first.ID {
		t.Fatalf("scoped PutSecret = %+v, %v, %v", scoped, created, err)
	}
	mustSecret(t, s, o.ID, "", "AA_FIRST", "a")

	list, err := s.ListSecrets(ctx(), o.ID, "")
	if err != nil || len(list) != 2 || list[0].Key != "AA_FIRST" || list[1].Key != "API_KEY" || !bytes.Equal(list[1].Ciphertext, []byte{9}) ||
		!list[1].CreatedAt.Equal(t0) || !list[1].UpdatedAt.Equal(later) || list[1].ScopeID != "" {
		t.Fatalf("ListSecrets org = %+v, %v", list, err)
	}
	list, err = s.ListSecrets(ctx(), o.ID, sc.ID)
	if err != nil || len(list) != 1 || list[0].ID != scoped.ID || list[0].ScopeID != sc.ID {
		t.Fatalf("ListSecrets scope = %+v, %v", list, err)
	}

	_, _, err = s.PutSecret(ctx(), store.Secret{ID: id("sec"), OrgID: o.ID, ScopeID: "missing", Key: "K", Ciphertext: []byte{1}, CreatedAt: t0, UpdatedAt: t0})
	wantErr(t, err, store.ErrNotFound, "PutSecret into a missing scope")

	if err := s.DeleteSecret(ctx(), o.ID, sc.ID, "API_KEY"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteSecret(ctx(), o.ID, sc.ID, "API_KEY"), store.ErrNotFound, "DeleteSecret twice")
	if list, _ := s.ListSecrets(ctx(), o.ID, ""); len(list) != 2 {
		t.Fatalf("deleting the scoped secret touched org-level ones: %+v", list)
	}
	if err := s.DeleteSecret(ctx(), o.ID, "", "API_KEY"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListSecrets(ctx(), o.ID, ""); len(list) != 1 {
		t.Fatalf("after delete: %+v", list)
	}
}

func testSecretsConcurrent(t *testing.T, s store.Store) {
	o := mustOrg(t, s, "acme")
	const n = 8
	var wg sync.WaitGroup
	var createdN atomic.Int32
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, created, err := s.PutSecret(ctx(), store.Secret{ID: id("sec"), OrgID: o.ID, Key: "K", Ciphertext: []byte{byte(i)}, CreatedAt: t0, UpdatedAt: t0})
			if err != nil {
				t.Errorf("PutSecret: %v", err)
				return
			}
			if created {
				createdN.Add(1)
			}
			ids[i] = got.ID
		}()
	}
	wg.Wait()
	if createdN.Load() != 1 {
		t.Fatalf("%d concurrent puts reported created, want 1", createdN.Load())
	}
	for _, x := range ids {
		if x != ids[0] {
			t.Fatalf("concurrent puts returned different ids: %v", ids)
		}
	}
}

func testAgents(t *testing.T, s store.Store) {
	o := mustOrg(t, s, "acme")
	sc := mustScope(t, s, o.ID, "production")
	a := newAgent(o.ID, sc.ID)
	if err := s.CreateAgent(ctx(), a, 2); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAgent(ctx(), o.ID, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != a.Name || got.ScopeID != sc.ID || got.Model != a.Model || got.InitialPrompt != "build" || got.HiddenPrompt != "be terse" ||
		string(got.MCPServers) != string(a.MCPServers) ||
		got.Status != store.StatusProvisioning || !bytes.Equal(got.ControlToken, a.ControlToken) || got.Handle != nil || got.Node != "node-1" ||
		!got.CreatedAt.Equal(t0) {
		t.Fatalf("GetAgent = %+v, want %+v", got, a)
	}
	b := newAgent(o.ID, "")
	if err := s.CreateAgent(ctx(), b, 2); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateAgent(ctx(), newAgent(o.ID, ""), 2), store.ErrLimit, "third agent with limit 2")
	wantErr(t, s.CreateAgent(ctx(), newAgent(o.ID, "missing"), 0), store.ErrNotFound, "agent in a missing scope")

	h := json.RawMessage(`{"id":"x","driver":"process","endpoint":"http://127.0.0.1:20001"}`)
	later := t0.Add(time.Minute)
	if err := s.UpdateAgentRuntime(ctx(), o.ID, a.ID, store.AgentRuntime{Status: store.StatusError, ErrorMsg: "boom", Port: 20001, Handle: h, Node: "node-2", UpdatedAt: later}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.UpdateAgentRuntime(ctx(), o.ID, "missing", store.AgentRuntime{Status: store.StatusStopped, UpdatedAt: later}), store.ErrNotFound, "UpdateAgentRuntime missing")
	got, _ = s.GetAgent(ctx(), o.ID, a.ID)
	var hv, gv any
	json.Unmarshal(h, &hv)
	json.Unmarshal(got.Handle, &gv)
	if got.Status != store.StatusError || got.ErrorMsg != "boom" || got.Port != 20001 || fmt.Sprint(hv) != fmt.Sprint(gv) ||
		got.Node != "node-2" || !got.UpdatedAt.Equal(later) {
		t.Fatalf("after UpdateAgentRuntime = %+v", got)
	}
	if got.SessionPermissionsOff {
		t.Fatal("a new agent's session pages may not reply to permissions; the default is that they may")
	}
	if err := s.SetSessionPermissions(ctx(), o.ID, a.ID, false); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.GetAgent(ctx(), o.ID, a.ID); !got.SessionPermissionsOff || got.Status != store.StatusError {
		t.Fatalf("after SetSessionPermissions(false) = %+v", got)
	}
	s.SetSessionPermissions(ctx(), o.ID, a.ID, true)
	if got, _ = s.GetAgent(ctx(), o.ID, a.ID); got.SessionPermissionsOff {
		t.Fatalf("after SetSessionPermissions(true) = %+v", got)
	}
	wantErr(t, s.SetSessionPermissions(ctx(), "other-org", a.ID, false), store.ErrNotFound, "SetSessionPermissions of another org's agent")
	off := newAgent(o.ID, "")
	off.SessionPermissionsOff = true
	if err := s.CreateAgent(ctx(), off, 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetAgent(ctx(), o.ID, off.ID); !got.SessionPermissionsOff {
		t.Fatalf("created with session permissions off = %+v", got)
	}
	s.DeleteAgent(ctx(), o.ID, off.ID)

	list, err := s.ListAgents(ctx(), o.ID)
	if err != nil || len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Fatalf("ListAgents = %+v, %v", list, err)
	}
	other := mustOrg(t, s, "other")
	c := newAgent(other.ID, "")
	c.CreatedAt = t0.Add(time.Second)
	if err := s.CreateAgent(ctx(), c, 0); err != nil {
		t.Fatal(err)
	}
	nodes, err := s.NodeAgents(ctx(), "node-1")
	if err != nil || len(nodes) != 2 || nodes[0].ID != b.ID || nodes[1].ID != c.ID {
		t.Fatalf("NodeAgents = %+v, %v; want b and c across orgs", nodes, err)
	}
	if f, err := s.FindAgent(ctx(), c.ID); err != nil || f.OrgID != other.ID {
		t.Fatalf("FindAgent = %+v, %v", f, err)
	}
	if err := s.DeleteAgent(ctx(), o.ID, a.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindAgent(ctx(), a.ID)
	wantErr(t, err, store.ErrNotFound, "FindAgent after delete")
	_, err = s.GetAgent(ctx(), o.ID, a.ID)
	wantErr(t, err, store.ErrNotFound, "GetAgent after delete")
	wantErr(t, s.DeleteAgent(ctx(), o.ID, a.ID), store.ErrNotFound, "DeleteAgent twice")
	if err := s.CreateAgent(ctx(), newAgent(o.ID, ""), 2); err != nil {
		t.Fatalf("a deleted agent must free its place under the limit: %v", err)
	}
}

func testAgentLimitConcurrent(t *testing.T, s store.Store) {
	o := mustOrg(t, s, "acme")
	const limit, n = 3, 10
	var wg sync.WaitGroup
	var ok, limited atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.CreateAgent(ctx(), newAgent(o.ID, ""), limit)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrLimit):
				limited.Add(1)
			default:
				t.Errorf("CreateAgent: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != limit || limited.Load() != n-limit {
		t.Fatalf("concurrent creates: %d ok, %d limited; want %d and %d", ok.Load(), limited.Load(), limit, n-limit)
	}
}

// testIsolation checks that every org-scoped call treats another
// organization's ids like missing ones.
func testIsolation(t *testing.T, s store.Store) {
	mine, theirs := mustOrg(t, s, "mine"), mustOrg(t, s, "theirs")
	sc := mustScope(t, s, theirs.ID, "production")
	a := mustAgent(t, s, theirs.ID, sc.ID)
	mustSecret(t, s, theirs.ID, "", "K", "v")
	mustSecret(t, s, theirs.ID, sc.ID, "K", "v")

	_, err := s.GetScope(ctx(), mine.ID, sc.ID)
	wantErr(t, err, store.ErrNotFound, "GetScope foreign")
	_, err = s.ScopeByName(ctx(), mine.ID, "production")
	wantErr(t, err, store.ErrNotFound, "ScopeByName foreign")
	name := "x"
	_, err = s.UpdateScope(ctx(), mine.ID, sc.ID, store.ScopeUpdate{Name: &name, UpdatedAt: t0})
	wantErr(t, err, store.ErrNotFound, "UpdateScope foreign")
	wantErr(t, s.DeleteScope(ctx(), mine.ID, sc.ID), store.ErrNotFound, "DeleteScope foreign")
	if refs, err := s.ScopeAgents(ctx(), mine.ID, sc.ID); err != nil || len(refs) != 0 {
		t.Fatalf("ScopeAgents foreign = %+v, %v", refs, err)
	}
	if list, err := s.ListScopes(ctx(), mine.ID); err != nil || len(list) != 0 {
		t.Fatalf("ListScopes = %+v, %v", list, err)
	}
	_, _, err = s.PutSecret(ctx(), store.Secret{ID: id("sec"), OrgID: mine.ID, ScopeID: sc.ID, Key: "K", Ciphertext: []byte{1}, CreatedAt: t0, UpdatedAt: t0})
	wantErr(t, err, store.ErrNotFound, "PutSecret into a foreign scope")
	if list, err := s.ListSecrets(ctx(), mine.ID, ""); err != nil || len(list) != 0 {
		t.Fatalf("ListSecrets = %+v, %v", list, err)
	}
	if list, err := s.ListSecrets(ctx(), mine.ID, sc.ID); err != nil || len(list) != 0 {
		t.Fatalf("ListSecrets foreign scope = %+v, %v", list, err)
	}
	wantErr(t, s.DeleteSecret(ctx(), mine.ID, "", "K"), store.ErrNotFound, "DeleteSecret foreign")
	wantErr(t, s.DeleteSecret(ctx(), mine.ID, sc.ID, "K"), store.ErrNotFound, "DeleteSecret foreign scope")

	_, err = s.GetAgent(ctx(), mine.ID, a.ID)
	wantErr(t, err, store.ErrNotFound, "GetAgent foreign")
	wantErr(t, s.UpdateAgentRuntime(ctx(), mine.ID, a.ID, store.AgentRuntime{Status: store.StatusStopped, UpdatedAt: t0}), store.ErrNotFound, "UpdateAgentRuntime foreign")
	wantErr(t, s.DeleteAgent(ctx(), mine.ID, a.ID), store.ErrNotFound, "DeleteAgent foreign")
	wantErr(t, s.CreateAgent(ctx(), newAgent(mine.ID, sc.ID), 0), store.ErrNotFound, "CreateAgent in a foreign scope")
	if list, err := s.ListAgents(ctx(), mine.ID); err != nil || len(list) != 0 {
		t.Fatalf("ListAgents = %+v, %v", list, err)
	}
	// Nothing of theirs changed.
	if got, err := s.GetScope(ctx(), theirs.ID, sc.ID); err != nil || got.AgentCount != 1 || got.SecretCount != 1 {
		t.Fatalf("their scope = %+v, %v", got, err)
	}
}

func testMeta(t *testing.T, s store.Store) {
	v, err := s.InitMeta(ctx(), "k", "first")
	if err != nil || v != "first" {
		t.Fatalf("InitMeta = %q, %v", v, err)
	}
	v, err = s.InitMeta(ctx(), "k", "second")
	if err != nil || v != "first" {
		t.Fatalf("InitMeta again = %q, %v; the first value must stay", v, err)
	}
}

func testNodes(t *testing.T, s store.Store) {
	n := id("node")
	if _, err := s.NodeURL(ctx(), n); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("NodeURL of an unknown node: %v, want ErrNotFound", err)
	}
	if err := s.PutNode(ctx(), n, "http://10.0.0.1:8080", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutNode(ctx(), n, "http://10.0.0.2:8080", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if u, err := s.NodeURL(ctx(), n); err != nil || u != "http://10.0.0.2:8080" {
		t.Fatalf("NodeURL = %q, %v; want the last URL put", u, err)
	}
}

// testUploadBytes checks the per-agent upload quota: reservations up to
// the limit, ErrLimit beyond it without a change, releases, isolation, and
// concurrent reservations that never overshoot.
func testUploadBytes(t *testing.T, s store.Store) {
	o, other := mustOrg(t, s, "acme"), mustOrg(t, s, "other")
	a := newAgent(o.ID, "")
	if err := s.CreateAgent(ctx(), a, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.AddUploadBytes(ctx(), o.ID, a.ID, 60, 100); err != nil || n != 60 {
		t.Fatalf("AddUploadBytes 60 = %d, %v", n, err)
	}
	_, err := s.AddUploadBytes(ctx(), o.ID, a.ID, 41, 100)
	wantErr(t, err, store.ErrLimit, "over the quota")
	if n, err := s.AddUploadBytes(ctx(), o.ID, a.ID, 40, 100); err != nil || n != 100 {
		t.Fatalf("AddUploadBytes up to the quota = %d, %v", n, err)
	}
	if n, err := s.AddUploadBytes(ctx(), o.ID, a.ID, -150, 100); err != nil || n != 0 {
		t.Fatalf("release below zero = %d, %v; want 0", n, err)
	}
	_, err = s.AddUploadBytes(ctx(), other.ID, a.ID, 1, 100)
	wantErr(t, err, store.ErrNotFound, "another organization's agent")
	_, err = s.AddUploadBytes(ctx(), o.ID, "missing", 1, 100)
	wantErr(t, err, store.ErrNotFound, "missing agent")

	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.AddUploadBytes(ctx(), o.ID, a.ID, 30, 100); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, store.ErrLimit) {
				t.Errorf("AddUploadBytes: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 3 {
		t.Fatalf("%d concurrent reservations of 30 fit in 100, want 3", ok.Load())
	}
}
