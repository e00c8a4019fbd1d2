package coderuntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/agenthost/agenthost/internal/coding"
	"github.com/agenthost/agenthost/internal/ids"
)

// Settings are what `agenthost serve --role coding` reads from its
// environment (docs/runtime-control.md), before flags override them.
type Settings struct {
	Config
	// Port is AGENTHOST_PORT (default 8000).
	Port int
	// Host is AGENTHOST_HOST, the address to listen on (default
	// 127.0.0.1). The Docker driver sets 0.0.0.0: inside a container the
	// published port reaches the container's interface, not its loopback;
	// the engine still publishes it on the host's loopback only.
	Host string
	// ListenFD is AGENTHOST_LISTEN_FD: a listening socket the driver bound
	// and handed over (the process driver passes fd 3). Serve then takes
	// it instead of binding Host:Port, so the platform's first /health
	// waits in its backlog instead of being refused and polled again.
	ListenFD int
	// TokenGenerated is set when AGENTHOST_CONTROL_TOKEN was empty and a
	// random token was made; Serve then prints it.
	TokenGenerated bool
}

// FromEnv reads the runtime's settings from getenv; relative paths are
// taken from dir, which is also the default workspace.
func FromEnv(getenv func(string) string, dir string) (Settings, error) {
	s := Settings{Port: 8000}
	if p := getenv("AGENTHOST_PORT"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return s, fmt.Errorf("AGENTHOST_PORT=%q is not a port", p)
		}
		s.Port = n
	}
	if v := getenv("AGENTHOST_LISTEN_FD"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3 {
			return s, fmt.Errorf("AGENTHOST_LISTEN_FD=%q is not an inherited descriptor (3 or more)", v)
		}
		s.ListenFD = n
	}
	abs := func(p string) string {
		if p != "" && !filepath.IsAbs(p) {
			return filepath.Join(dir, p)
		}
		return p
	}
	s.Workspace = abs(getenv("AGENTHOST_WORKSPACE"))
	if s.Workspace == "" {
		s.Workspace = dir
	}
	s.DataDir = abs(getenv("AGENTHOST_DATA_DIR"))
	s.Model = getenv("AGENTHOST_MODEL")
	s.Host = getenv("AGENTHOST_HOST")
	s.HiddenPrompt = getenv("AGENTHOST_HIDDEN_PROMPT")
	s.Token = getenv("AGENTHOST_CONTROL_TOKEN")
	if s.Token == "" {
		s.Token, s.TokenGenerated = ids.Token(24), true
	}
	if w := getenv("AGENTHOST_WORKERS"); w != "" {
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 {
			return s, fmt.Errorf("AGENTHOST_WORKERS=%q is not a number of turns (at least 1)", w)
		}
		s.Workers = n
	}
	rules, err := coding.ParseRules([]byte(getenv("AGENTHOST_PERMISSIONS")))
	if err != nil {
		return s, fmt.Errorf("AGENTHOST_PERMISSIONS: %w", err)
	}
	s.Rules = rules
	if err := isolationFromEnv(getenv, &s); err != nil {
		return s, err
	}
	if s.MCPServers, err = mcpFromEnv(getenv); err != nil {
		return s, err
	}
	return s, nil
}

// Serve runs a runtime on s.Host:s.Port (127.0.0.1 unless set), or on
// the socket s.ListenFD names, until ctx ends, printing where it listens
// to out once it accepts connections; then it closes the runtime (ending
// turns and event streams) and shuts the server down.
func Serve(ctx context.Context, s Settings, out io.Writer) error {
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// The inherited socket is taken first, before New starts anything
	// (MCP servers): from here on only a close-on-exec copy of it exists,
	// so no child of the runtime, tools included, inherits it.
	var ln net.Listener
	var err error
	if s.ListenFD > 0 {
		if ln, err = inheritedListener(s.ListenFD); err != nil {
			return err
		}
	}
	rt, err := New(s.Config)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	if ln == nil {
		listenHost := s.Host
		if listenHost == "" {
			listenHost = "127.0.0.1"
		}
		if ln, err = net.Listen("tcp", net.JoinHostPort(listenHost, strconv.Itoa(s.Port))); err != nil {
			rt.Close()
			return err
		}
	}
	srv := &http.Server{Handler: rt.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(out, "agenthost coding runtime listening on http://%s (workspace %s)\n", ln.Addr(), rt.Workspace())
	if rt.cfg.Sandbox == SandboxNone {
		fmt.Fprintln(out, "WARNING: INSECURE: AGENTHOST_SANDBOX=none: the agent's tools run without a sandbox, with this runtime's rights")
	}
	if s.TokenGenerated {
		fmt.Fprintf(out, "control token (AGENTHOST_CONTROL_TOKEN was not set): %s\n", s.Token)
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		rt.Close()
		return err
	}
	cerr := rt.Close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return cerr
}

// inheritedListener turns the listening socket at fd into a listener and
// closes fd itself: the listener holds a close-on-exec duplicate.
func inheritedListener(fd int) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), "agenthost-listener")
	if f == nil {
		return nil, fmt.Errorf("AGENTHOST_LISTEN_FD=%d: no such descriptor; start the runtime with its listening socket at that descriptor, or unset the variable to listen on AGENTHOST_PORT", fd)
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("AGENTHOST_LISTEN_FD=%d is not a listening socket (%w); start the runtime with its listening socket at that descriptor, or unset the variable to listen on AGENTHOST_PORT", fd, err)
	}
	return ln, nil
}
