package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/agenthost/agenthost/internal/platform/store"
)

// scopeArg is the scope_id column value: NULL for org-level.
func scopeArg(scopeID string) sql.NullString { return nullString(scopeID) }

// scopeWhere matches one scope, or org-level rows when $2 is NULL.
const scopeWhere = `(scope_id = $2 OR (scope_id IS NULL AND $2 IS NULL))`

// PutSecret implements store.Store.
func (s *Store) PutSecret(ctx context.Context, sec store.Secret) (store.Secret, bool, error) {
	var out store.Secret
	var created bool
	err := s.tx(ctx, sec.OrgID, func(tx *sql.Tx) error {
		if sec.ScopeID != "" {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM scopes WHERE org_id = $1 AND id = $2`, sec.OrgID, sec.ScopeID).Scan(&one)
			if err != nil {
				return notFound(err, "scope")
			}
		}
		var id string
		var createdAt int64
		err := tx.QueryRowContext(ctx, `INSERT INTO secrets (id, org_id, scope_id, key, value, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (org_id, scope_key, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
			RETURNING id, created_at`,
			sec.ID, sec.OrgID, scopeArg(sec.ScopeID), sec.Key, sec.Ciphertext, ms(sec.CreatedAt), ms(sec.UpdatedAt)).Scan(&id, &createdAt)
		if err != nil {
			if s.d.IsForeignKey(err) {
				return fmt.Errorf("scope: %w", store.ErrNotFound)
			}
			return err
		}
		created = id == sec.ID
		out = sec
		out.ID, out.CreatedAt = id, fromMS(createdAt)
		return nil
	})
	if err != nil {
		return store.Secret{}, false, err
	}
	return out, created, nil
}

// ListSecrets implements store.Store.
func (s *Store) ListSecrets(ctx context.Context, orgID, scopeID string) ([]store.Secret, error) {
	rows, err := s.st.Query(ctx, `SELECT id, org_id, scope_id, key, value, created_at, updated_at FROM secrets
		WHERE org_id = $1 AND `+scopeWhere+` ORDER BY key`+s.d.Binary, orgID, scopeArg(scopeID))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Secret{}
	for rows.Next() {
		var x store.Secret
		var scope sql.NullString
		var created, updated int64
		if err := rows.Scan(&x.ID, &x.OrgID, &scope, &x.Key, &x.Ciphertext, &created, &updated); err != nil {
			return nil, err
		}
		x.ScopeID = scope.String
		x.CreatedAt, x.UpdatedAt = fromMS(created), fromMS(updated)
		out = append(out, x)
	}
	return out, rows.Err()
}

// DeleteSecret implements store.Store.
func (s *Store) DeleteSecret(ctx context.Context, orgID, scopeID, key string) error {
	res, err := s.st.Exec(ctx, `DELETE FROM secrets WHERE org_id = $1 AND `+scopeWhere+` AND key = $3`, orgID, scopeArg(scopeID), key)
	return affected(res, err, "secret")
}
