package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/agenthost/agenthost/internal/platform/store"
)

// scopeSelect reads scopes with their counts; callers append WHERE/ORDER.
const scopeSelect = `SELECT s.id, s.org_id, s.name, s.description, s.created_at, s.updated_at,
	(SELECT COUNT(*) FROM agents a WHERE a.scope_id = s.id),
	(SELECT COUNT(*) FROM secrets x WHERE x.scope_id = s.id)
	FROM scopes s `

func scanScope(row interface{ Scan(...any) error }) (store.Scope, error) {
	var sc store.Scope
	var desc sql.NullString
	var created, updated int64
	if err := row.Scan(&sc.ID, &sc.OrgID, &sc.Name, &desc, &created, &updated, &sc.AgentCount, &sc.SecretCount); err != nil {
		return store.Scope{}, err
	}
	if desc.Valid {
		d := desc.String
		sc.Description = &d
	}
	sc.CreatedAt, sc.UpdatedAt = fromMS(created), fromMS(updated)
	return sc, nil
}

// CreateScope implements store.Store.
func (s *Store) CreateScope(ctx context.Context, sc store.Scope) error {
	var desc sql.NullString
	if sc.Description != nil {
		desc = sql.NullString{String: *sc.Description, Valid: true}
	}
	_, err := s.st.Exec(ctx, `INSERT INTO scopes (id, org_id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		sc.ID, sc.OrgID, sc.Name, desc, ms(sc.CreatedAt), ms(sc.UpdatedAt))
	if err != nil && s.d.IsUnique(err) {
		return fmt.Errorf("scope %q: %w", sc.Name, store.ErrConflict)
	}
	if err != nil && s.d.IsForeignKey(err) {
		return fmt.Errorf("organization: %w", store.ErrNotFound)
	}
	return err
}

// GetScope implements store.Store.
func (s *Store) GetScope(ctx context.Context, orgID, id string) (store.Scope, error) {
	sc, err := scanScope(s.st.QueryRow(ctx, scopeSelect+`WHERE s.org_id = $1 AND s.id = $2`, orgID, id))
	if err != nil {
		return store.Scope{}, notFound(err, "scope")
	}
	return sc, nil
}

// ScopeByName implements store.Store.
func (s *Store) ScopeByName(ctx context.Context, orgID, name string) (store.Scope, error) {
	sc, err := scanScope(s.st.QueryRow(ctx, scopeSelect+`WHERE s.org_id = $1 AND s.name = $2`, orgID, name))
	if err != nil {
		return store.Scope{}, notFound(err, "scope")
	}
	return sc, nil
}

// ListScopes implements store.Store.
func (s *Store) ListScopes(ctx context.Context, orgID string) ([]store.Scope, error) {
	rows, err := s.st.Query(ctx, scopeSelect+`WHERE s.org_id = $1 ORDER BY s.created_at, s.id`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Scope{}
	for rows.Next() {
		sc, err := scanScope(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

// UpdateScope implements store.Store.
func (s *Store) UpdateScope(ctx context.Context, orgID, id string, u store.ScopeUpdate) (store.Scope, error) {
	err := s.tx(ctx, orgID, func(tx *sql.Tx) error {
		if u.Name != nil {
			res, err := tx.ExecContext(ctx, `UPDATE scopes SET name = $1 WHERE org_id = $2 AND id = $3`, *u.Name, orgID, id)
			if err != nil && s.d.IsUnique(err) {
				return fmt.Errorf("scope %q: %w", *u.Name, store.ErrConflict)
			}
			if err := affected(res, err, "scope"); err != nil {
				return err
			}
		}
		if u.Description != nil || u.ClearDescription {
			var desc sql.NullString
			if u.Description != nil {
				desc = sql.NullString{String: *u.Description, Valid: true}
			}
			res, err := tx.ExecContext(ctx, `UPDATE scopes SET description = $1 WHERE org_id = $2 AND id = $3`, desc, orgID, id)
			if err := affected(res, err, "scope"); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE scopes SET updated_at = $1 WHERE org_id = $2 AND id = $3`, ms(u.UpdatedAt), orgID, id)
		return affected(res, err, "scope")
	})
	if err != nil {
		return store.Scope{}, err
	}
	return s.GetScope(ctx, orgID, id)
}

// DeleteScope implements store.Store.
func (s *Store) DeleteScope(ctx context.Context, orgID, id string) error {
	return s.tx(ctx, orgID, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM scopes WHERE org_id = $1 AND id = $2`, orgID, id).Scan(&one); err != nil {
			return notFound(err, "scope")
		}
		// The org-level value wins over a scoped one with the same key.
		if _, err := tx.ExecContext(ctx, `DELETE FROM secrets WHERE org_id = $1 AND scope_id = $2 AND key IN
			(SELECT key FROM secrets WHERE org_id = $1 AND scope_id IS NULL)`, orgID, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE secrets SET scope_id = NULL WHERE org_id = $1 AND scope_id = $2`, orgID, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET scope_id = NULL WHERE org_id = $1 AND scope_id = $2`, orgID, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM scopes WHERE org_id = $1 AND id = $2`, orgID, id)
		return affected(res, err, "scope")
	})
}

// ScopeAgents implements store.Store.
func (s *Store) ScopeAgents(ctx context.Context, orgID, scopeID string) ([]store.ScopeRef, error) {
	rows, err := s.st.Query(ctx, `SELECT id, name, status, created_at FROM agents WHERE org_id = $1 AND scope_id = $2 ORDER BY created_at, id`, orgID, scopeID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.ScopeRef{}
	for rows.Next() {
		var r store.ScopeRef
		var created int64
		if err := rows.Scan(&r.ID, &r.Name, &r.Status, &created); err != nil {
			return nil, err
		}
		r.CreatedAt = fromMS(created)
		out = append(out, r)
	}
	return out, rows.Err()
}
