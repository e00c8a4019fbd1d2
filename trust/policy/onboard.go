package policy

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/agenthost/agenthost/trust"
)

// Credits is the local credits ledger an operator manages ("agenthost
// credits grant ADDRESS N"); payment onboarding draws on it. A host backs
// it with its database. Amounts are whole credits; addresses are lower
// case. Implementations must be safe for concurrent use.
type Credits interface {
	// Balance returns addr's balance (zero when unknown).
	Balance(ctx context.Context, addr string) (int64, error)
	// Grant adds amount (> 0) to addr's balance and returns the new balance.
	Grant(ctx context.Context, addr string, amount int64) (int64, error)
	// Spend atomically takes amount (> 0) from addr's balance and returns
	// the new balance, or fails with ErrInsufficientCredits and changes
	// nothing.
	Spend(ctx context.Context, addr string, amount int64) (int64, error)
}

// onboardError is a refused onboarding; each matches ErrOnboardingFailed.
type onboardError struct{ msg string }

// Error returns the refusal, fit to show the caller.
func (e *onboardError) Error() string { return e.msg }

// Is makes every onboardError match ErrOnboardingFailed.
func (e *onboardError) Is(target error) bool { return target == ErrOnboardingFailed }

// ErrOnboardingFailed matches every refused onboarding below. Its text is
// safe to show the caller (a WebSocket ERROR, a 403). Errors that do not
// match it come from the stores.
var ErrOnboardingFailed = errors.New("onboarding failed")

// Onboarding refusals. Each matches ErrOnboardingFailed.
var (
	ErrOnboardingUnavailable error = &onboardError{"this agent does not offer onboarding by that method"}
	ErrNoCredentials         error = &onboardError{"send an invite code or a payment to onboard"}
	ErrInvalidInviteCode     error = &onboardError{"invalid invite code"}
	ErrPaymentTooLow         error = &onboardError{"payment is below the required amount"}
	ErrInsufficientCredits   error = &onboardError{"insufficient credits"}
	ErrBlocked               error = &onboardError{"blocked by this agent"}
)

// Credentials are what a caller offers to onboard: an invite code or a
// payment in credits (the "invite_code" and "payment" fields of a signed
// payload or ONBOARD_SUBMIT).
type Credentials struct {
	InviteCode string `json:"invite_code,omitempty"`
	Payment    int64  `json:"payment,omitempty"`
}

// Present reports whether any credential is offered.
func (c Credentials) Present() bool { return strings.TrimSpace(c.InviteCode) != "" || c.Payment != 0 }

// CredentialsFromPayload reads "invite_code" (a string) and "payment" (a
// whole number; 10.0 counts as 10) from a signed payload. Other types are
// ignored.
func CredentialsFromPayload(payload json.RawMessage) Credentials {
	var p struct {
		InviteCode any `json:"invite_code"`
		Payment    any `json:"payment"`
	}
	var c Credentials
	if json.Unmarshal(payload, &p) != nil {
		return c
	}
	if s, ok := p.InviteCode.(string); ok {
		c.InviteCode = s
	}
	if f, ok := p.Payment.(float64); ok && f == math.Trunc(f) && math.Abs(f) <= 1e15 {
		c.Payment = int64(f)
	}
	return c
}

// Onboard makes the signed caller addr a contact if cred satisfies the
// policy's onboarding: a listed invite code, or a payment of at least the
// configured amount, which draws exactly that amount from addr's credits.
// The promotion is stored through Contacts. A caller who is already a
// contact or whitelisted keeps its level and pays nothing. It returns the
// caller's level afterwards. Refusals match ErrOnboardingFailed.
func (g *Gate) Onboard(ctx context.Context, addr string, cred Credentials) (Level, error) {
	if addr == "" {
		return LevelAnonymous, trust.ErrUnsigned
	}
	addr, err := trust.NormalizeAddress(addr)
	if err != nil {
		return "", err
	}
	level, err := g.Level(ctx, addr)
	if err != nil {
		return "", err
	}
	switch level {
	case LevelBlocked:
		return level, ErrBlocked
	case LevelContact, LevelWhitelisted:
		return level, nil
	}
	on := g.policy.Onboard
	if !cred.Present() {
		return level, ErrNoCredentials
	}
	if code := strings.TrimSpace(cred.InviteCode); code != "" {
		if validCode(on.InviteCodes, code) {
			if err := g.promote(ctx, addr); err != nil {
				return level, err
			}
			g.log.Info("trust: caller onboarded", "caller", addr, "method", MethodInviteCode)
			return LevelContact, nil
		}
		if cred.Payment == 0 {
			if len(on.InviteCodes) == 0 {
				return level, ErrOnboardingUnavailable
			}
			g.log.Info("trust: onboarding refused", "caller", addr, "method", MethodInviteCode)
			return level, ErrInvalidInviteCode
		}
		// A wrong code with a payment: try the payment.
	}
	if on.Payment <= 0 {
		return level, ErrOnboardingUnavailable
	}
	if cred.Payment < on.Payment {
		return level, fmt.Errorf("%w: %d credits required", ErrPaymentTooLow, on.Payment)
	}
	if _, err := g.credits.Spend(ctx, addr, on.Payment); err != nil {
		return level, err
	}
	if err := g.promote(ctx, addr); err != nil {
		if _, rerr := g.credits.Grant(ctx, addr, on.Payment); rerr != nil {
			g.log.Error("trust: refunding a failed onboarding payment", "caller", addr, "credits", on.Payment, "err", rerr)
		}
		return level, err
	}
	g.log.Info("trust: caller onboarded", "caller", addr, "method", MethodPayment, "credits", on.Payment)
	return LevelContact, nil
}

func (g *Gate) promote(ctx context.Context, addr string) error {
	if err := g.contacts.SetLevel(ctx, addr, LevelContact); err != nil {
		return fmt.Errorf("trust: storing contact: %w", err)
	}
	g.forget(addr)
	return nil
}

// validCode compares code with every listed code in constant time.
func validCode(codes []string, code string) bool {
	ok := 0
	for _, c := range codes {
		ok |= subtle.ConstantTimeCompare([]byte(strings.TrimSpace(c)), []byte(code))
	}
	return ok == 1
}

// MemoryCredits is an in-memory Credits for tests.
type MemoryCredits struct {
	mu  sync.Mutex
	bal map[string]int64
}

// NewMemoryCredits returns an empty ledger.
func NewMemoryCredits() *MemoryCredits { return &MemoryCredits{bal: make(map[string]int64)} }

// Balance implements Credits.
func (m *MemoryCredits) Balance(_ context.Context, addr string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bal[addr], nil
}

// Grant implements Credits.
func (m *MemoryCredits) Grant(_ context.Context, addr string, amount int64) (int64, error) {
	if amount <= 0 {
		return 0, fmt.Errorf("credits: grant must be positive, not %d", amount)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bal[addr] > math.MaxInt64-amount {
		return 0, errors.New("credits: balance overflow")
	}
	m.bal[addr] += amount
	return m.bal[addr], nil
}

// Spend implements Credits.
func (m *MemoryCredits) Spend(_ context.Context, addr string, amount int64) (int64, error) {
	if amount <= 0 {
		return 0, fmt.Errorf("credits: spend must be positive, not %d", amount)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bal[addr] < amount {
		return m.bal[addr], ErrInsufficientCredits
	}
	m.bal[addr] -= amount
	return m.bal[addr], nil
}
