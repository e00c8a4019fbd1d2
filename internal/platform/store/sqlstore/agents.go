package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agenthost/agenthost/internal/platform/store"
)

const agentCols = `id, org_id, name, scope_id, model, initial_prompt, hidden_prompt, status, error_msg, port, handle, control_token, node, created_at, updated_at, session_permissions_off, mcp_servers`

func scanAgent(row interface{ Scan(...any) error }) (store.Agent, error) {
	var a store.Agent
	var scope, handle sql.NullString
	var created, updated int64
	var mcpServers string
	err := row.Scan(&a.ID, &a.OrgID, &a.Name, &scope, &a.Model, &a.InitialPrompt, &a.HiddenPrompt, &a.Status, &a.ErrorMsg,
		&a.Port, &handle, &a.ControlToken, &a.Node, &created, &updated, &a.SessionPermissionsOff, &mcpServers)
	if err != nil {
		return store.Agent{}, err
	}
	if mcpServers != "" {
		a.MCPServers = json.RawMessage(mcpServers)
	}
	a.ScopeID = scope.String
	if handle.Valid {
		a.Handle = json.RawMessage(handle.String)
	}
	a.CreatedAt, a.UpdatedAt = fromMS(created), fromMS(updated)
	return a, nil
}

func handleArg(h json.RawMessage) sql.NullString {
	if len(h) == 0 {
		return sql.NullString{}
	}
	return sql.NullString{String: string(h), Valid: true}
}

// CreateAgent implements store.Store.
func (s *Store) CreateAgent(ctx context.Context, a store.Agent, maxPerOrg int) error {
	return s.tx(ctx, a.OrgID, func(tx *sql.Tx) error {
		if maxPerOrg > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM agents WHERE org_id = $1`, a.OrgID).Scan(&n); err != nil {
				return err
			}
			if n >= maxPerOrg {
				return fmt.Errorf("%d agents: %w", n, store.ErrLimit)
			}
		}
		if a.ScopeID != "" {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM scopes WHERE org_id = $1 AND id = $2`, a.OrgID, a.ScopeID).Scan(&one)
			if err != nil {
				return notFound(err, "scope")
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO agents (`+agentCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
			a.ID, a.OrgID, a.Name, nullString(a.ScopeID), a.Model, a.InitialPrompt, a.HiddenPrompt, string(a.Status), a.ErrorMsg,
			a.Port, handleArg(a.Handle), a.ControlToken, a.Node, ms(a.CreatedAt), ms(a.UpdatedAt), a.SessionPermissionsOff, string(a.MCPServers))
		if err != nil && s.d.IsForeignKey(err) {
			return fmt.Errorf("organization or scope: %w", store.ErrNotFound)
		}
		return err
	})
}

// GetAgent implements store.Store.
func (s *Store) GetAgent(ctx context.Context, orgID, id string) (store.Agent, error) {
	a, err := scanAgent(s.st.QueryRow(ctx, `SELECT `+agentCols+` FROM agents WHERE org_id = $1 AND id = $2`, orgID, id))
	if err != nil {
		return store.Agent{}, notFound(err, "agent")
	}
	return a, nil
}

// FindAgent implements store.Store.
func (s *Store) FindAgent(ctx context.Context, id string) (store.Agent, error) {
	a, err := scanAgent(s.st.QueryRow(ctx, `SELECT `+agentCols+` FROM agents WHERE id = $1`, id))
	if err != nil {
		return store.Agent{}, notFound(err, "agent")
	}
	return a, nil
}

// ListAgents implements store.Store.
func (s *Store) ListAgents(ctx context.Context, orgID string) ([]store.Agent, error) {
	return s.agents(ctx, `SELECT `+agentCols+` FROM agents WHERE org_id = $1 ORDER BY created_at, id`, orgID)
}

// NodeAgents implements store.Store.
func (s *Store) NodeAgents(ctx context.Context, node string) ([]store.Agent, error) {
	return s.agents(ctx, `SELECT `+agentCols+` FROM agents WHERE node = $1 ORDER BY created_at, id`, node)
}

func (s *Store) agents(ctx context.Context, q, arg string) ([]store.Agent, error) {
	rows, err := s.st.Query(ctx, q, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Agent{}
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// UpdateAgentRuntime implements store.Store.
func (s *Store) UpdateAgentRuntime(ctx context.Context, orgID, id string, r store.AgentRuntime) error {
	res, err := s.st.Exec(ctx, `UPDATE agents SET status = $1, error_msg = $2, port = $3, handle = $4, node = $5, updated_at = $6
		WHERE org_id = $7 AND id = $8`,
		string(r.Status), r.ErrorMsg, r.Port, handleArg(r.Handle), r.Node, ms(r.UpdatedAt), orgID, id)
	return affected(res, err, "agent")
}

// SetSessionPermissions implements store.Store.
func (s *Store) SetSessionPermissions(ctx context.Context, orgID, id string, on bool) error {
	res, err := s.st.Exec(ctx, `UPDATE agents SET session_permissions_off = $1 WHERE org_id = $2 AND id = $3`, !on, orgID, id)
	return affected(res, err, "agent")
}

// AddUploadBytes implements store.Store.
func (s *Store) AddUploadBytes(ctx context.Context, orgID, id string, delta, max int64) (int64, error) {
	var total int64
	err := s.st.QueryRow(ctx, `UPDATE agents SET upload_bytes = CASE WHEN upload_bytes + $1 < 0 THEN 0 ELSE upload_bytes + $1 END
		WHERE org_id = $2 AND id = $3 AND ($1 <= 0 OR upload_bytes + $1 <= $4) RETURNING upload_bytes`,
		delta, orgID, id, max).Scan(&total)
	if errors.Is(err, sql.ErrNoRows) {
		if _, gerr := s.GetAgent(ctx, orgID, id); gerr != nil {
			return 0, gerr
		}
		return 0, fmt.Errorf("agent uploads: %w", store.ErrLimit)
	}
	return total, err
}

// DeleteAgent implements store.Store.
func (s *Store) DeleteAgent(ctx context.Context, orgID, id string) error {
	res, err := s.st.Exec(ctx, `DELETE FROM agents WHERE org_id = $1 AND id = $2`, orgID, id)
	return affected(res, err, "agent")
}
