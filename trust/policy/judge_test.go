package policy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/agenthost/agenthost/internal/testutil"
	"github.com/agenthost/agenthost/llm"
)

// fakeModel answers every request with a fixed text and records requests.
type fakeModel struct {
	answer string
	err    error
	mu     sync.Mutex
	reqs   []*llm.Request
}

func (m *fakeModel) Name() string { return "fake/judge" }

func (m *fakeModel) Generate(ctx context.Context, req *llm.Request, _ func(llm.Delta)) (*llm.Response, error) {
	m.mu.Lock()
	m.reqs = append(m.reqs, req)
	m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	return &llm.Response{Message: llm.Message{Role: llm.RoleAssistant, Parts: []llm.Part{llm.TextPart(m.answer)}}}, nil
}

func TestLLMJudge(t *testing.T) {
	ctx := context.Background()
	in := JudgeInput{Address: friend, Level: LevelContact, History: History{Requests: 12, Denials: 1}, Policy: "I trust contacts with a good history."}
	for _, tc := range []struct {
		name    string
		answer  string
		err     error
		allow   bool
		reason  string
		wantErr bool
	}{
		{name: "allow", answer: `{"allow": true, "reason": "known contact"}`, allow: true, reason: "known contact"},
		{name: "deny in a code fence", answer: "Let me think.\n```json\n{\"allow\": false, \"reason\": \"too many denials\"}\n```", reason: "too many denials"},
		{name: "prose only", answer: "Yes, let them in.", wantErr: true},
		{name: "string allow", answer: `{"allow": "true"}`, wantErr: true},
		{name: "model error", err: errors.New("HTTP 500"), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeModel{answer: tc.answer, err: tc.err}
			allow, reason, err := NewLLMJudge(m).Judge(ctx, in)
			if tc.wantErr {
				if err == nil || allow {
					t.Fatalf("want an error and a refusal, got %v %q %v", allow, reason, err)
				}
				return
			}
			if err != nil || allow != tc.allow || reason != tc.reason {
				t.Fatalf("got %v %q %v", allow, reason, err)
			}
			req := m.reqs[0]
			user := req.Messages[0].Text()
			for _, want := range []string{in.Policy, friend, `"level": "contact"`, `"requests": 12`, `"denials": 1`} {
				if !strings.Contains(user, want) {
					t.Errorf("judge prompt lacks %q:\n%s", want, user)
				}
			}
			if !strings.Contains(req.System, `{"allow": true or false`) || req.Temperature == nil || *req.Temperature != 0 {
				t.Errorf("system prompt / temperature: %q %v", req.System, req.Temperature)
			}
		})
	}
	// An empty policy gets the default one; anonymous callers have no address.
	m := &fakeModel{answer: `{"allow":false}`}
	_, _, _ = NewLLMJudge(m).Judge(ctx, JudgeInput{Level: LevelAnonymous})
	if u := m.reqs[0].Messages[0].Text(); !strings.Contains(u, DefaultJudgePolicy) || !strings.Contains(u, `"address": null`) || !strings.Contains(u, `"signed": false`) {
		t.Errorf("anonymous prompt:\n%s", u)
	}
}

func TestParseVerdict(t *testing.T) {
	for _, tc := range []struct {
		text    string
		allow   bool
		reason  string
		wantErr bool
	}{
		{`{"allow":true,"reason":"ok"}`, true, "ok", false},
		{`{"allow":true}`, true, "", false},
		{`Sure! {"allow": false, "reason": " nope "} Hope that helps.`, false, "nope", false},
		{`{"note": {"x": 1}} then {"allow": true, "reason": "fine"}`, true, "fine", false},
		{`{"allow": true, "reason": "a"} {"allow": false, "reason": "b"}`, false, "b", false},
		{`{bad json {"allow": true, "reason": "c"}`, true, "c", false},
		{`{"allow": null}`, false, "", true},
		{`{"allow": 1}`, false, "", true},
		{`{"verdict": "allow"}`, false, "", true},
		{``, false, "", true},
		{`{`, false, "", true},
	} {
		allow, reason, err := ParseVerdict(tc.text)
		if (err != nil) != tc.wantErr || allow != tc.allow || reason != tc.reason {
			t.Errorf("ParseVerdict(%q) = %v %q %v", tc.text, allow, reason, err)
		}
	}
}

// TestCachedJudge runs in a synctest bubble: synctest.Wait returns once
// every concurrent caller is blocked, so the test knows they all wait on
// the one call without sleeping.
func TestCachedJudge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var calls atomic.Int32
		release := make(chan struct{})
		slow := JudgeFunc(func(ctx context.Context, in JudgeInput) (bool, string, error) {
			calls.Add(1)
			<-release
			return in.Level == LevelContact, "because", nil
		})
		clk := testutil.NewClock(t0)
		c := NewCachedJudge(slow, time.Minute, clk.Now)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if allow, _, err := c.Judge(ctx, JudgeInput{Address: friend, Level: LevelContact}); err != nil || !allow {
					t.Errorf("concurrent judge: %v %v", allow, err)
				}
			})
		}
		synctest.Wait() // every goroutine is blocked: the Judge callers wait on the one call
		close(release)
		wg.Wait()
		if calls.Load() != 1 {
			t.Fatalf("%d judge calls for 8 concurrent requests, want 1", calls.Load())
		}
		if allow, _, _ := c.Judge(ctx, JudgeInput{Address: friend, Level: LevelStranger}); allow || calls.Load() != 2 {
			t.Error("a different level must be judged anew")
		}
		c.Forget(friend)
		_, _, _ = c.Judge(ctx, JudgeInput{Address: friend, Level: LevelContact})
		if calls.Load() != 3 {
			t.Errorf("Forget did not drop the entry: %d calls", calls.Load())
		}
		clk.Advance(time.Minute)
		_, _, _ = c.Judge(ctx, JudgeInput{Address: friend, Level: LevelContact})
		if calls.Load() != 4 {
			t.Errorf("expired entry reused: %d calls", calls.Load())
		}
		// A waiter whose context ends stops waiting.
		block := make(chan struct{})
		defer close(block)
		c2 := NewCachedJudge(JudgeFunc(func(ctx context.Context, _ JudgeInput) (bool, string, error) {
			select {
			case <-block:
				return true, "", nil
			case <-ctx.Done():
				return false, "", ctx.Err()
			}
		}), time.Minute, nil)
		go func() { _, _, _ = c2.Judge(ctx, JudgeInput{Address: stranger}) }()
		synctest.Wait() // the waiter is blocked on the call
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := c2.Judge(cctx, JudgeInput{Address: stranger}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled waiter: %v", err)
		}
	})
}
