package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agenthost/agenthost/trust"
)

// AdminAction is an operator's change to a caller's stored level.
type AdminAction string

// The admin actions. Promote raises a caller one step (stranger → contact →
// whitelisted), demote lowers it one step, block blocks it and unblock makes
// a blocked caller a stranger again. A blocked caller must be unblocked
// before it can be promoted.
const (
	AdminPromote AdminAction = "promote"
	AdminDemote  AdminAction = "demote"
	AdminBlock   AdminAction = "block"
	AdminUnblock AdminAction = "unblock"
)

// ErrPromoteBlocked is ApplyAdmin's refusal to promote a blocked caller,
// which must be unblocked first (a host answers it with 409).
var ErrPromoteBlocked = errors.New("is blocked; unblock it first")

// AdminOp is an admin operation. Signed, its payload is
//
//	{"admin": "promote", "address": "0x…", "to": "<host address>", "timestamp": N}
//
// and the envelope's "from" must be the host's own address.
type AdminOp struct {
	Action  AdminAction `json:"admin"`
	Address string      `json:"address"`
}

// Validate checks the action and normalizes the address.
func (op *AdminOp) Validate() error {
	switch op.Action {
	case AdminPromote, AdminDemote, AdminBlock, AdminUnblock:
	default:
		return fmt.Errorf("admin: unknown action %q (want promote, demote, block or unblock)", clipAddr(string(op.Action)))
	}
	addr, err := trust.NormalizeAddress(op.Address)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	op.Address = addr
	return nil
}

// SignAdmin signs op with the host's identity id, addressed to id itself,
// at time now.
func SignAdmin(id *trust.Identity, op AdminOp, now time.Time) (trust.Envelope, error) {
	if err := op.Validate(); err != nil {
		return trust.Envelope{}, err
	}
	return trust.Sign(id, map[string]any{
		"admin":     op.Action,
		"address":   op.Address,
		"to":        id.Address(),
		"timestamp": now.Unix(),
	})
}

// VerifyAdmin verifies a signed admin operation with v (the whole message,
// as for trust.Verifier.Verify) and returns it. Besides everything Verify
// checks, the payload must name this host in "to" and the signer must be
// the host itself (trust.ErrNotAdmin otherwise); every failure matches
// trust.ErrUnauthorized.
func VerifyAdmin(ctx context.Context, v *trust.Verifier, raw []byte) (AdminOp, error) {
	m, err := v.Verify(ctx, raw)
	if err != nil {
		return AdminOp{}, err
	}
	if m.From != v.Address() {
		return AdminOp{}, trust.ErrNotAdmin
	}
	if m.To == "" {
		return AdminOp{}, fmt.Errorf("%w: an admin operation must name this agent in payload.to", trust.ErrWrongRecipient)
	}
	var op AdminOp
	if err := json.Unmarshal(m.Payload, &op); err != nil {
		return AdminOp{}, fmt.Errorf("%w: admin payload: %v", trust.ErrMalformed, err)
	}
	if err := op.Validate(); err != nil {
		return AdminOp{}, fmt.Errorf("%w: %v", trust.ErrMalformed, err)
	}
	return op, nil
}

// ApplyAdmin applies op to the stored levels in c and returns the stored
// level afterwards. The CLI ("agenthost trust promote ADDRESS") can call it
// on the host's store directly.
func ApplyAdmin(ctx context.Context, c Contacts, op AdminOp) (Level, error) {
	if err := op.Validate(); err != nil {
		return "", err
	}
	cur, err := c.Level(ctx, op.Address)
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	next := cur
	switch op.Action {
	case AdminPromote:
		switch cur {
		case LevelBlocked:
			return cur, fmt.Errorf("admin: %s: %w", op.Address, ErrPromoteBlocked)
		case LevelContact, LevelWhitelisted:
			next = LevelWhitelisted
		default:
			next = LevelContact
		}
	case AdminDemote:
		switch cur {
		case LevelWhitelisted:
			next = LevelContact
		case LevelContact:
			next = LevelStranger
		}
	case AdminBlock:
		next = LevelBlocked
	case AdminUnblock:
		if cur == LevelBlocked {
			next = LevelStranger
		}
	}
	if next != cur {
		if err := c.SetLevel(ctx, op.Address, next); err != nil {
			return cur, fmt.Errorf("admin: %w", err)
		}
	}
	return next, nil
}

// Apply applies an admin operation to the gate's contacts and returns the
// caller's effective level afterwards, which the access lists may still
// override (an address on the blacklist file stays blocked).
func (g *Gate) Apply(ctx context.Context, op AdminOp) (Level, error) {
	if _, err := ApplyAdmin(ctx, g.contacts, op); err != nil {
		return "", err
	}
	addr := strings.ToLower(op.Address)
	g.forget(addr)
	g.log.Info("trust: admin operation", "action", op.Action, "caller", addr)
	return g.Level(ctx, addr)
}
