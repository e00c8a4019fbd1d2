// Package store is the platform's persistence: organizations, API tokens,
// scopes, secrets and agents. The Store interface has two implementations,
// SQLite (sqlite/, the single-node default) and PostgreSQL (postgres/, shared
// by several platform replicas); storetest holds the conformance suite both
// must pass.
//
// Every read and write of a tenant's data takes the organization id, so a
// caller cannot reach another organization's rows by id: a foreign id is
// ErrNotFound, exactly like a missing one.
//
// The store never sees a secret in clear: Secret.Ciphertext and
// Agent.ControlToken are sealed by the caller (package secrets).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Errors the store returns, wrapped; test with errors.Is.
var (
	// ErrNotFound: no such row in this organization.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique name is taken (scope names, organization names).
	ErrConflict = errors.New("already exists")
	// ErrLimit: CreateAgent found the organization at its agent limit.
	ErrLimit = errors.New("limit reached")
)

// Org is a tenant. Tokens, scopes, secrets and agents belong to exactly one.
type Org struct {
	ID        string
	Name      string
	CreatedAt time.Time
	// DefaultModel is the model of the organization's agents created
	// without one; empty falls back to the platform's default.
	DefaultModel string
}

// Token is an API token as stored: only the SHA-256 of its secret part, so
// a copy of the database grants nothing.
type Token struct {
	ID         string
	OrgID      string
	Label      string
	Hash       []byte
	CreatedAt  time.Time
	LastUsedAt time.Time // zero when never used
}

// Scope groups agents and secrets; agents in a scope receive only its
// secrets.
type Scope struct {
	ID          string
	OrgID       string
	Name        string
	Description *string // nil when never given
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// AgentCount and SecretCount are filled by ListScopes and GetScope.
	AgentCount  int
	SecretCount int
}

// ScopeUpdate changes a scope; nil fields are left alone. ClearDescription
// sets the description to null.
type ScopeUpdate struct {
	Name             *string
	Description      *string
	ClearDescription bool
	UpdatedAt        time.Time
}

// Secret is one encrypted environment variable, org-level when ScopeID is
// empty.
type Secret struct {
	ID      string
	OrgID   string
	ScopeID string
	Key     string
	// Ciphertext is the sealed value; it never leaves the platform.
	Ciphertext []byte `json:"-"`
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// AgentStatus is an agent's lifecycle state, spelled as the API shows it.
type AgentStatus string

// Agent states. PROVISIONING lasts while a runtime is being started for the
// first time; RUNNING means the agent should be running (the supervisor
// restarts a crashed runtime); STOPPED was asked for; ERROR is final until
// the agent is deleted.
const (
	StatusProvisioning AgentStatus = "PROVISIONING"
	StatusRunning      AgentStatus = "RUNNING"
	StatusStopped      AgentStatus = "STOPPED"
	StatusError        AgentStatus = "ERROR"
)

// Agent is an agent's record. The runtime itself lives wherever the driver
// put it; Handle is what the platform needs to find it again.
type Agent struct {
	ID      string
	OrgID   string
	Name    string
	ScopeID string // empty: org-level
	Model   string
	// InitialPrompt and HiddenPrompt are kept for the runtime; the platform
	// does not interpret them.
	InitialPrompt string
	HiddenPrompt  string
	Status        AgentStatus
	ErrorMsg      string // empty unless Status is ERROR
	// Port is the loopback port of the current (or last) runtime; 0 before
	// the first start.
	Port int
	// Handle is the driver's persisted runtime.Handle as JSON; nil before
	// the first start.
	Handle json.RawMessage
	// ControlToken is the sealed per-agent token the platform presents to
	// the runtime's control API.
	ControlToken []byte `json:"-"`
	// Node names the platform replica that runs this agent's runtime; only
	// that replica supervises and reconciles it.
	Node string
	// SessionPermissionsOff: the agent's session pages may not reply to
	// its permission requests, only the organization's tokens may (the
	// API's sessionPermissions: false). The zero value is the default:
	// pages may reply, in their own session.
	SessionPermissionsOff bool
	// MCPServers are the agent's MCP servers as the API took them (a JSON
	// object in OpenCode's shape, docs/mcp.md); nil for none. The platform
	// hands them to the runtime; their secrets are {env:NAME} references
	// to the organisation's secrets, never values.
	MCPServers json.RawMessage
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// AgentRuntime is the part of an agent its lifecycle changes.
type AgentRuntime struct {
	Status    AgentStatus
	ErrorMsg  string
	Port      int
	Handle    json.RawMessage
	Node      string
	UpdatedAt time.Time
}

// ScopeRef is an agent as a scope's details list it.
type ScopeRef struct {
	ID        string
	Name      string
	Status    AgentStatus
	CreatedAt time.Time
}

// Store persists the platform's state. Implementations are safe for
// concurrent use and may be shared by several platform processes.
type Store interface {
	// CreateOrg inserts an organization; ErrConflict when the name is taken.
	CreateOrg(ctx context.Context, o Org) error
	// OrgByName finds an organization by its unique name.
	OrgByName(ctx context.Context, name string) (Org, error)
	// OrgByID finds an organization by id.
	OrgByID(ctx context.Context, id string) (Org, error)
	// SetOrgDefaultModel sets (or, with "", clears) the organization's
	// default model; ErrNotFound for an unknown id.
	SetOrgDefaultModel(ctx context.Context, id, model string) error

	// CreateToken inserts a token; its org must exist.
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash finds the token whose secret hashes to hash.
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	// ListTokens lists an organization's tokens, oldest first.
	ListTokens(ctx context.Context, orgID string) ([]Token, error)
	// DeleteToken revokes a token.
	DeleteToken(ctx context.Context, orgID, id string) error
	// TouchToken records a use of the token.
	TouchToken(ctx context.Context, id string, at time.Time) error

	// CreateScope inserts a scope; ErrConflict when the org has one by
	// that name.
	CreateScope(ctx context.Context, s Scope) error
	// GetScope returns a scope with its counts.
	GetScope(ctx context.Context, orgID, id string) (Scope, error)
	// ScopeByName returns a scope with its counts.
	ScopeByName(ctx context.Context, orgID, name string) (Scope, error)
	// ListScopes lists an organization's scopes with counts, oldest first.
	ListScopes(ctx context.Context, orgID string) ([]Scope, error)
	// UpdateScope applies u and returns the scope as it now is.
	UpdateScope(ctx context.Context, orgID, id string, u ScopeUpdate) (Scope, error)
	// DeleteScope deletes a scope; its agents and secrets become org-level.
	// A scoped secret whose key already exists at org level is dropped:
	// the org-level value that unscoped agents already receive wins.
	DeleteScope(ctx context.Context, orgID, id string) error
	// ScopeAgents lists the agents of a scope, oldest first.
	ScopeAgents(ctx context.Context, orgID, scopeID string) ([]ScopeRef, error)

	// PutSecret creates s (ID, CreatedAt and UpdatedAt set by the caller)
	// or, when the key exists in the same scope, replaces its value and
	// UpdatedAt. It returns the stored secret and whether it was created.
	// A scoped secret whose scope does not exist in the org is ErrNotFound.
	PutSecret(ctx context.Context, s Secret) (Secret, bool, error)
	// ListSecrets lists the secrets of one scope (or org-level ones when
	// scopeID is empty), ordered by key, ciphertexts included.
	ListSecrets(ctx context.Context, orgID, scopeID string) ([]Secret, error)
	// DeleteSecret deletes a secret by key.
	DeleteSecret(ctx context.Context, orgID, scopeID, key string) error

	// CreateAgent inserts a; when maxPerOrg > 0 and the organization
	// already has that many agents it returns ErrLimit. A scope that does
	// not exist in the org is ErrNotFound.
	CreateAgent(ctx context.Context, a Agent, maxPerOrg int) error
	// GetAgent returns one agent of an organization.
	GetAgent(ctx context.Context, orgID, id string) (Agent, error)
	// ListAgents lists an organization's agents, oldest first.
	ListAgents(ctx context.Context, orgID string) ([]Agent, error)
	// NodeAgents lists every organization's agents run by a node, for
	// reconciliation after a restart.
	NodeAgents(ctx context.Context, node string) ([]Agent, error)
	// FindAgent finds an agent by id in any organization. It exists for
	// the platform's own housekeeping (is this runtime anybody's?), never
	// for serving a request.
	FindAgent(ctx context.Context, id string) (Agent, error)
	// UpdateAgentRuntime records a lifecycle change.
	UpdateAgentRuntime(ctx context.Context, orgID, id string, r AgentRuntime) error
	// SetSessionPermissions records whether the agent's session pages may
	// reply to its permission requests.
	SetSessionPermissions(ctx context.Context, orgID, id string, on bool) error
	// AddUploadBytes adds delta (negative to give bytes back) to the bytes
	// an agent's uploads count against its quota, atomically: when delta is
	// positive and the total would exceed max it changes nothing and returns
	// ErrLimit. It returns the new total.
	AddUploadBytes(ctx context.Context, orgID, id string, delta, max int64) (int64, error)
	// DeleteAgent deletes an agent's record.
	DeleteAgent(ctx context.Context, orgID, id string) error

	// InitMeta stores value under name unless a value is already there, and
	// returns the stored value. It lets replicas agree on installation-wide
	// facts (the master key's check value).
	InitMeta(ctx context.Context, name, value string) (string, error)

	// PutNode records (or replaces) the internal base URL at which a
	// platform node serves requests forwarded by the other replicas.
	PutNode(ctx context.Context, name, url string, at time.Time) error
	// NodeURL is the URL a node last recorded; ErrNotFound when none.
	NodeURL(ctx context.Context, name string) (string, error)

	// Close releases the store's connections.
	Close() error
}
