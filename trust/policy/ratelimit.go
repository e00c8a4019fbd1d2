package policy

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// KeyedLimiter is a token bucket per key (an address, an IP): n events per
// period, in bursts of at most burst. Its clock is injectable, so tests
// advance time instead of sleeping. Idle keys are forgotten. It is safe for
// concurrent use.
type KeyedLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	prune   int
}

// NewKeyedLimiter allows n events per period per key, burst at once; now is
// the clock (time.Now if nil).
func NewKeyedLimiter(n int, period time.Duration, burst int, now func() time.Time) *KeyedLimiter {
	if now == nil {
		now = time.Now
	}
	return &KeyedLimiter{limit: rate.Limit(float64(n) / period.Seconds()), burst: burst, now: now,
		buckets: map[string]*rate.Limiter{}, prune: 1024}
}

// Allow takes one token from key's bucket and reports whether there was
// one.
func (l *KeyedLimiter) Allow(key string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.prune {
			for k, v := range l.buckets {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.buckets, k) // full again: as good as new
				}
			}
			l.prune = max(1024, 2*len(l.buckets))
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	return b.AllowN(now, 1)
}

// RateLimitedJudge bounds how often a judge is asked: per caller address
// and over all callers, so neither one caller nor a crowd of new
// identities can run up the bill of a paid model. A caller over its limit
// is refused (not judged) with a reason saying so; refusals are not
// cached, so it is judged again once under its limit.
type RateLimitedJudge struct {
	Next      Judge
	PerCaller *KeyedLimiter
	Overall   *KeyedLimiter
}

// Default judge limits: per caller, and over all callers.
const (
	DefaultJudgePerCallerPerMinute = 6
	DefaultJudgeOverallPerMinute   = 60
)

// NewRateLimitedJudge limits j to the default rates on clock now.
func NewRateLimitedJudge(j Judge, now func() time.Time) *RateLimitedJudge {
	return &RateLimitedJudge{
		Next:      j,
		PerCaller: NewKeyedLimiter(DefaultJudgePerCallerPerMinute, time.Minute, DefaultJudgePerCallerPerMinute, now),
		Overall:   NewKeyedLimiter(DefaultJudgeOverallPerMinute, time.Minute, DefaultJudgeOverallPerMinute, now),
	}
}

// errJudgeBusy refuses a caller over the judge's limits; being an error,
// it is not cached, and the gate shows its message.
type errJudgeBusy struct{ msg string }

func (e *errJudgeBusy) Error() string { return e.msg }

// Decide implements Judge.
func (r *RateLimitedJudge) Judge(ctx context.Context, in JudgeInput) (bool, string, error) {
	if !r.PerCaller.Allow(in.Address) {
		return false, "", &errJudgeBusy{"too many decisions asked for this caller; retry in a minute"}
	}
	if !r.Overall.Allow("") {
		return false, "", &errJudgeBusy{"this agent's policy judge is busy; retry in a minute"}
	}
	return r.Next.Judge(ctx, in)
}
