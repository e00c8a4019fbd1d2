package trust

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
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
	addr, err := NormalizeAddress(op.Address)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	op.Address = addr
	return nil
}

// SignAdmin signs op with the host's identity id, addressed to id itself,
// at time now.
func SignAdmin(id *Identity, op AdminOp, now time.Time) (Envelope, error) {
	if err := op.Validate(); err != nil {
		return Envelope{}, err
	}
	return Sign(id, map[string]any{
		"admin":     op.Action,
		"address":   op.Address,
		"to":        id.Address(),
		"timestamp": now.Unix(),
	})
}

// VerifyAdmin verifies a signed admin operation (the whole message, as for
// Verify) and returns it. Besides everything Verify checks, the payload must
// name this host in "to" and the signer must be the host itself
// (ErrNotAdmin otherwise).
func (v *Verifier) VerifyAdmin(ctx context.Context, raw []byte) (AdminOp, error) {
	m, err := v.Verify(ctx, raw)
	if err != nil {
		return AdminOp{}, err
	}
	if m.From != v.self {
		return AdminOp{}, ErrNotAdmin
	}
	if m.To == "" {
		return AdminOp{}, fmt.Errorf("%w: an admin operation must name this agent in payload.to", ErrWrongRecipient)
	}
	var op AdminOp
	if err := json.Unmarshal(m.Payload, &op); err != nil {
		return AdminOp{}, fmt.Errorf("%w: admin payload: %v", ErrMalformed, err)
	}
	if err := op.Validate(); err != nil {
		return AdminOp{}, fmt.Errorf("%w: %v", ErrMalformed, err)
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
			return cur, fmt.Errorf("admin: %s is blocked; unblock it first", op.Address)
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
