package coderuntime

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/agenthost/agenthost/internal/egress"
	"github.com/agenthost/agenthost/internal/sandbox"
)

// Values of AGENTHOST_SANDBOX.
const (
	SandboxBwrap = "bwrap"
	SandboxNone  = "none"
)

// isolation is what keeps the agent's tools out of the runtime's reach:
// the egress proxy and the sandboxes.
type isolation struct {
	proxy     *egress.Server
	sandboxes *sandbox.Manager
	probe     chan error // the sandbox probe's verdict, while it runs beside the rest of New
}

// isolate sets cfg.Tools up for the isolation cfg asks for: the egress
// policy for webfetch, the disk limit, the tools' environment and, unless
// cfg.Sandbox is "none", the sandbox manager and the egress proxy it uses.
// With a sandbox wanted but not available it fails, saying what is
// missing.
func isolate(cfg *Config, ws string, log *slog.Logger) (*isolation, error) {
	policy, err := egress.Parse(cfg.EgressAllow)
	if err != nil {
		return nil, err
	}
	if err := policy.Deny(cfg.EgressDeny); err != nil {
		return nil, err
	}
	dialer := &egress.Dialer{Policy: policy}
	if cfg.Tools.Egress == nil {
		cfg.Tools.Egress = dialer
	}
	if cfg.DiskLimit <= 0 {
		cfg.DiskLimit = sandbox.DefaultDiskLimit
	}
	if cfg.Tools.DiskLimit == 0 {
		cfg.Tools.DiskLimit = cfg.DiskLimit
	}
	// The session pages' uploads: each session's own, out of the others'
	// reach.
	cfg.Tools.Private = SessionUploads
	switch cfg.Sandbox {
	case SandboxNone:
		log.Warn("INSECURE: AGENTHOST_SANDBOX=none: the agent's tools run without a sandbox, as this runtime's user; " +
			"they can read everything it can (its control token and database included) and reach any address")
		// Built from nothing all the same: the host's PATH, the named
		// variables, never the runtime's own.
		cfg.Tools.Env = append(append([]string(nil), cfg.ToolEnv...), cfg.Tools.Env...)
		return &isolation{}, nil
	case "", SandboxBwrap:
		cfg.Sandbox = SandboxBwrap
	default:
		return nil, fmt.Errorf("AGENTHOST_SANDBOX=%q: use bwrap or none", cfg.Sandbox)
	}
	// Probing takes a bwrap run; it goes on while the runtime opens its
	// database, and check waits for it.
	iso := &isolation{}
	if !cfg.SandboxChecked {
		iso.probe = make(chan error, 1)
		go func() { iso.probe <- sandbox.Probe(context.Background()) }()
	}
	sock := filepath.Join(cfg.DataDir, "egress.sock")
	ln, err := egress.ListenUnix(sock)
	if err != nil {
		iso.close()
		return nil, err
	}
	iso.proxy = egress.Serve(ln, egress.NewProxy(dialer, log))
	var hide []string
	if rel, err := filepath.Rel(ws, cfg.DataDir); err == nil && filepath.IsLocal(rel) {
		hide = append(hide, cfg.DataDir) // the default data directory lies in the workspace
	}
	iso.sandboxes, err = sandbox.New(sandbox.Config{Workspace: ws, ProxySocket: sock, ToolEnv: cfg.ToolEnv,
		DiskLimit: cfg.DiskLimit, NoFile: cfg.NoFile, Logger: log, Hide: hide, Private: SessionUploads})
	if err != nil {
		iso.close()
		return nil, err
	}
	cfg.Tools.Sandbox = iso.sandboxes
	return iso, nil
}

// check waits for the sandbox probe and returns its failure, saying what
// is missing.
func (iso *isolation) check() error {
	if iso.probe == nil {
		return nil
	}
	if err := <-iso.probe; err != nil {
		iso.probe <- err
		return fmt.Errorf("%w (the platform's --insecure-no-sandbox runs tools without a sandbox, for a single trusted user only)", err)
	}
	iso.probe <- nil
	return nil
}

// closeAll ends every sandbox (abort of all sessions).
func (iso *isolation) closeAll() {
	if iso != nil && iso.sandboxes != nil {
		iso.sandboxes.CloseAll()
	}
}

func (iso *isolation) close() {
	if iso == nil {
		return
	}
	if iso.probe != nil {
		<-iso.probe // not to leave the probe's bwrap behind
		iso.probe <- nil
	}
	if iso.sandboxes != nil {
		iso.sandboxes.Close()
	}
	if iso.proxy != nil {
		iso.proxy.Close()
	}
}

// isolationFromEnv reads AGENTHOST_SANDBOX, AGENTHOST_TOOL_ENV,
// AGENTHOST_EGRESS_ALLOW, AGENTHOST_EGRESS_DENY, AGENTHOST_DISK_LIMIT and AGENTHOST_NOFILE_LIMIT
// into s.
func isolationFromEnv(getenv func(string) string, s *Settings) error {
	s.Sandbox = strings.TrimSpace(getenv("AGENTHOST_SANDBOX"))
	s.SandboxChecked = getenv("AGENTHOST_SANDBOX_CHECKED") == "1"
	if s.Sandbox != "" && s.Sandbox != SandboxBwrap && s.Sandbox != SandboxNone {
		return fmt.Errorf("AGENTHOST_SANDBOX=%q: use bwrap or none", s.Sandbox)
	}
	names, err := sandbox.ParseToolEnv(getenv("AGENTHOST_TOOL_ENV"))
	if err != nil {
		return err
	}
	s.ToolEnv = sandbox.Pass(getenv, names)
	s.EgressAllow = getenv("AGENTHOST_EGRESS_ALLOW")
	if _, err := egress.Parse(s.EgressAllow); err != nil {
		return fmt.Errorf("AGENTHOST_EGRESS_ALLOW: %w", err)
	}
	s.EgressDeny = getenv("AGENTHOST_EGRESS_DENY")
	if err := (&egress.Policy{}).Deny(s.EgressDeny); err != nil {
		return fmt.Errorf("AGENTHOST_EGRESS_DENY: %w", err)
	}
	if v := getenv("AGENTHOST_DISK_LIMIT"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("AGENTHOST_DISK_LIMIT=%q is not a size in bytes", v)
		}
		s.DiskLimit = n
	}
	if v := getenv("AGENTHOST_NOFILE_LIMIT"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 16 {
			return fmt.Errorf("AGENTHOST_NOFILE_LIMIT=%q is not a number of files (at least 16)", v)
		}
		s.NoFile = n
	}
	return nil
}
