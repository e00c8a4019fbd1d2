package host_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/fakellm"
	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/trust"

	"github.com/agenthost/agenthost/trust/policy"
)

const prosePolicy = "I trust requests that:\n- come from known contacts with good history\n- have valid signatures\n"

// TestTrustJudgeFunc: a natural-language policy asks a custom judge (a Go
// function) with the caller's identity, level and history — never the
// request text; allow, deny and judge errors; decisions cached per caller
// for the configured TTL.
func TestTrustJudgeFunc(t *testing.T) {
	alice, bob, carol := newIdentity(t), newIdentity(t), newIdentity(t)
	var mu sync.Mutex
	var calls []policy.JudgeInput
	judge := policy.JudgeFunc(func(_ context.Context, in policy.JudgeInput) (bool, string, error) {
		mu.Lock()
		calls = append(calls, in)
		mu.Unlock()
		switch in.Address {
		case alice.Address():
			return true, "known", nil
		case carol.Address():
			return false, "", errors.New("model unavailable")
		}
		return false, "not someone this agent knows", nil
	})
	ncalls := func() int { mu.Lock(); defer mu.Unlock(); return len(calls) }
	clock := testutil.NewClock(time.Now())
	h := startTrustHost(t, t.TempDir(), host.WithTrust(prosePolicy), host.WithJudge(judge),
		host.WithJudgeCacheTTL(time.Minute), host.WithClock(clock.Now))
	seq := 0
	send := func(id *trust.Identity) (int, map[string]any) {
		seq++
		return postRaw(t, h.URL, signedInput(t, id, h.Address(), clock.Now(), map[string]any{"prompt": "secret plan #" + strconv.Itoa(seq)}, nil))
	}
	code, m := send(alice)
	wantStatus(t, code, 200, m)
	code, m = send(alice)
	wantStatus(t, code, 200, m)
	if n := ncalls(); n != 1 {
		t.Fatalf("judge called %d times for one caller within the TTL", n)
	}
	code, m = send(bob)
	wantError(t, code, 403, m, "not someone this agent knows")
	code, m = send(carol)
	wantError(t, code, 503, m, "could not be evaluated")
	code, m = send(carol) // errors are not cached
	wantError(t, code, 503, m)
	if n := ncalls(); n != 4 {
		t.Fatalf("judge calls = %d, want 4", n)
	}
	code, m = post(t, h.testHost(), map[string]any{"prompt": "hi"})
	wantError(t, code, 401, m, "signature required")

	clock.Advance(2 * time.Minute)
	code, m = send(alice)
	wantStatus(t, code, 200, m)
	mu.Lock()
	defer mu.Unlock()
	last := calls[len(calls)-1]
	if len(calls) != 6 || last.Address != alice.Address() || last.Level != policy.LevelStranger || last.History.Requests != 2 {
		t.Fatalf("after the TTL: %d calls, last %+v", len(calls), last)
	}
	for _, c := range calls {
		if c.Policy != prosePolicy[:len(prosePolicy)-1] {
			t.Fatalf("judge got policy %q", c.Policy)
		}
	}
}

// TestTrustAdmin: signed admin operations from the host's own identity
// over POST /admin/trust; others are refused; the host's identity lists
// every session.
func TestTrustAdmin(t *testing.T) {
	dir := t.TempDir()
	h := startTrustHost(t, dir, host.WithTrust("strict"))
	self, err := trust.LoadIdentity(filepath.Join(dir, ".co"))
	if err != nil || self.Address() != h.Address() {
		t.Fatalf("host identity: %v", err)
	}
	bob := newIdentity(t)
	seq := 0
	send := func(id *trust.Identity) (int, map[string]any) {
		seq++
		return postRaw(t, h.URL, signedInput(t, id, h.Address(), time.Now(), map[string]any{"prompt": "hi " + strconv.Itoa(seq)}, nil))
	}
	admin := func(signer *trust.Identity, action policy.AdminAction) (int, map[string]any) {
		env, err := trust.Sign(signer, map[string]any{"admin": action, "address": bob.Address(), "to": h.Address(), "timestamp": time.Now().Unix(), "n": seq})
		if err != nil {
			t.Fatal(err)
		}
		seq++
		code, m, _ := do(t, "POST", h.URL+"/admin/trust", env)
		return code, m
	}
	code, m := send(bob)
	wantError(t, code, 403, m)
	code, m = admin(self, policy.AdminPromote)
	wantStatus(t, code, 200, m)
	if m["level"] != "contact" || m["address"] != bob.Address() || m["admin"] != "promote" {
		t.Fatalf("promote: %v", m)
	}
	code, m = send(bob)
	wantStatus(t, code, 200, m)
	code, m = admin(self, policy.AdminBlock)
	wantStatus(t, code, 200, m)
	code, m = send(bob)
	wantError(t, code, 403, m, "blocked")
	code, m = admin(self, policy.AdminPromote)
	wantError(t, code, 409, m, "unblock")
	code, m = admin(self, policy.AdminUnblock)
	if code != 200 || m["level"] != "stranger" {
		t.Fatalf("unblock: %d %v", code, m)
	}
	code, m = admin(bob, policy.AdminPromote)
	wantError(t, code, 401, m, "own key")

	env, _ := policy.SignAdmin(self, policy.AdminOp{Action: policy.AdminPromote, Address: bob.Address()}, time.Now())
	code, m, _ = do(t, "POST", h.URL+"/admin/trust", env)
	wantStatus(t, code, 200, m)
	code, m, _ = do(t, "POST", h.URL+"/admin/trust", env)
	wantError(t, code, 401, m, "already used")

	// The host's own identity is always admitted and sees every caller's
	// sessions.
	code, m = send(self)
	wantStatus(t, code, 200, m)
	code, m = signedGet(t, self, h.URL, "/sessions")
	wantStatus(t, code, 200, m)
	if n := len(m["sessions"].([]any)); n != 2 {
		t.Fatalf("admin lists %d sessions, want 2", n)
	}
}

// TestTrustRestart: contacts promoted by onboarding and the replay ledger
// survive a restart on the same database.
func TestTrustRestart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".co", "host.yaml"), "trust:\n  onboard:\n    invite_code: [BETA2024]\n  default: deny\n")
	h := startTrustHost(t, dir)
	ann := newIdentity(t)
	addr := h.Address()
	joined := signedInput(t, ann, addr, time.Now(), map[string]any{"prompt": "hi", "invite_code": "BETA2024"}, nil)
	code, m := postRaw(t, h.URL, joined)
	wantStatus(t, code, 200, m)
	h.stop()

	h = startTrustHost(t, dir)
	if h.Address() != addr {
		t.Fatal("the host's address changed across a restart")
	}
	code, m = postRaw(t, h.URL, joined)
	wantError(t, code, 401, m, "already used")
	code, m = postRaw(t, h.URL, signedInput(t, ann, addr, time.Now(), map[string]any{"prompt": "hi again"}, nil))
	wantStatus(t, code, 200, m)
	code, m = postRaw(t, h.URL, signedInput(t, newIdentity(t), addr, time.Now(), map[string]any{"prompt": "hi"}, nil))
	wantError(t, code, 403, m, "onboarding required")
}

// TestTrustLLMJudge: a natural-language policy in host.yaml judged by a
// model served by a local fake OpenAI-wire server: allow, deny, an
// unreadable answer and a model error (both deny); the model sees the
// caller and the policy, never the request text.
func TestTrustLLMJudge(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	t.Setenv("OPENAI_BASE_URL", srv.URL())
	t.Setenv("OPENAI_API_KEY", "test-key")
	ann, ben, cal, dee := newIdentity(t), newIdentity(t), newIdentity(t), newIdentity(t)
	srv.Handle(func(r fakellm.Request) fakellm.Reply {
		facts := r.LastUserText()
		switch {
		case strings.Contains(facts, ann.Address()):
			return fakellm.TextReply(`{"allow": true, "reason": "signed stranger, no bad history"}`)
		case strings.Contains(facts, ben.Address()):
			return fakellm.TextReply("```json\n{\"allow\": false, \"reason\": \"not a known contact\"}\n```")
		case strings.Contains(facts, cal.Address()):
			return fakellm.TextReply("Sure, why not.")
		}
		return fakellm.ErrorReply(400, "model overloaded")
	})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".co", "host.yaml"), "trust:\n  default: ask\n  judge_model: openai/judge-1\n  judge_cache_ttl: 60\n"+
		"  policy: |\n    I trust signed callers who have not been refused before.\n")
	h := startTrustHost(t, dir)
	seq := 0
	send := func(id *trust.Identity) (int, map[string]any) {
		seq++
		return postRaw(t, h.URL, signedInput(t, id, h.Address(), time.Now(), map[string]any{"prompt": "secret plan #" + strconv.Itoa(seq)}, nil))
	}
	code, m := send(ann)
	wantStatus(t, code, 200, m)
	code, m = send(ann) // cached
	wantStatus(t, code, 200, m)
	code, m = send(ben)
	wantError(t, code, 403, m, "not a known contact")
	code, m = send(cal)
	wantError(t, code, 503, m, "could not be evaluated")
	code, m = send(dee)
	wantError(t, code, 503, m, "could not be evaluated")

	reqs := srv.Requests()
	if len(reqs) != 4 {
		t.Fatalf("judge model called %d times, want 4 (one per caller)", len(reqs))
	}
	for _, r := range reqs {
		if r.Model() != "judge-1" || strings.Contains(string(r.Raw), "secret plan") ||
			!strings.Contains(string(r.Raw), "have not been refused before") {
			t.Fatalf("judge request: model %q, body %s", r.Model(), r.Raw)
		}
	}
}

// TestTrustPolicyFileAndText: a markdown policy file (front matter and
// prose) and a prose `trust: |` in host.yaml reach the judge; /info says
// the trust is custom.
func TestTrustPolicyFileAndText(t *testing.T) {
	var mu sync.Mutex
	var got []string
	judge := policy.JudgeFunc(func(_ context.Context, in policy.JudgeInput) (bool, string, error) {
		mu.Lock()
		got = append(got, in.Policy)
		mu.Unlock()
		return true, "", nil
	})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".co", "policy.md"), "---\nonboard:\n  invite_code: [HELLO]\ndefault: ask\n---\nOnly callers from the partner program.\n")
	writeFile(t, filepath.Join(dir, ".co", "host.yaml"), "trust: policy.md\n")
	h := startTrustHost(t, dir, host.WithJudge(judge))
	code, m := postRaw(t, h.URL, signedInput(t, newIdentity(t), h.Address(), time.Now(), map[string]any{"prompt": "hi"}, nil))
	wantStatus(t, code, 200, m)
	code, m, _ = do(t, "GET", h.URL+"/info", nil)
	if code != 200 || m["trust"] != "custom" {
		t.Fatalf("info: %d %v", code, m)
	}

	dir2 := t.TempDir()
	writeFile(t, filepath.Join(dir2, ".co", "host.yaml"), "trust: |\n  I trust requests that\n  have valid signatures.\n")
	h2 := startTrustHost(t, dir2, host.WithJudge(judge))
	code, m = postRaw(t, h2.URL, signedInput(t, newIdentity(t), h2.Address(), time.Now(), map[string]any{"prompt": "hi"}, nil))
	wantStatus(t, code, 200, m)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "Only callers from the partner program." || got[1] != "I trust requests that\nhave valid signatures." {
		t.Fatalf("judge saw policies %q", got)
	}
}

// A natural-language policy with the offline model: the host says at start
// that the offline model cannot judge, and callers left to the judge get
// 503 saying why, not a misleading "signature required".
func TestProsePolicyOfflineModel(t *testing.T) {
	var logs testutil.Buffer
	h := startTrustHost(t, t.TempDir(), host.WithTrust(prosePolicy), host.WithLogger(logTo(&logs)))
	if l := logs.String(); !strings.Contains(l, "offline model cannot judge") || !strings.Contains(l, "judge_model") {
		t.Fatalf("no warning at start: %s", l)
	}
	code, m := postRaw(t, h.URL, signedInput(t, newIdentity(t), h.Address(), time.Now(), map[string]any{"prompt": "hi"}, nil))
	wantError(t, code, 503, m, "no model to judge")
}
