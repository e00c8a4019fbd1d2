package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/agenthost/agenthost/internal/coderuntime"
	"github.com/agenthost/agenthost/internal/coding"
)

// codingFlags are the serve flags that also apply to --role coding.
type codingFlags struct {
	port      int // -1 when not given
	workspace string
	model     string
}

// serveCoding runs the platform's coding runtime (docs/runtime-control.md)
// until ctx ends.
func serveCoding(ctx context.Context, env *Env, f codingFlags) error {
	port := f.port
	if port < 0 {
		port = 8000
		if p := env.Getenv("AGENTHOST_PORT"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n > 65535 {
				return fmt.Errorf("AGENTHOST_PORT=%q is not a port", p)
			}
			port = n
		}
	}
	ws := f.workspace
	if ws == "" {
		ws = env.Getenv("AGENTHOST_WORKSPACE")
	}
	if ws == "" {
		ws = env.Dir
	} else if !filepath.IsAbs(ws) {
		ws = filepath.Join(env.Dir, ws)
	}
	model := f.model
	if model == "" {
		model = env.Getenv("AGENTHOST_MODEL")
	}
	token := env.Getenv("AGENTHOST_CONTROL_TOKEN")
	printToken := token == ""
	if printToken {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		token = hex.EncodeToString(b)
	}
	rules, err := coding.ParseRules([]byte(env.Getenv("AGENTHOST_PERMISSIONS")))
	if err != nil {
		return fmt.Errorf("AGENTHOST_PERMISSIONS: %w", err)
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	if id := env.Getenv("AGENTHOST_AGENT_ID"); id != "" {
		log = log.With("agent", id)
	}
	dataDir := env.Getenv("AGENTHOST_DATA_DIR")
	if dataDir != "" && !filepath.IsAbs(dataDir) {
		dataDir = filepath.Join(env.Dir, dataDir)
	}
	rt, err := coderuntime.New(coderuntime.Config{
		Workspace:    ws,
		DataDir:      dataDir,
		Model:        model,
		HiddenPrompt: env.Getenv("AGENTHOST_HIDDEN_PROMPT"),
		Token:        token,
		Rules:        rules,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		rt.Close()
		return err
	}
	srv := &http.Server{Handler: rt.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(env.Stdout, "agenthost coding runtime listening on http://%s (workspace %s)\n", ln.Addr(), rt.Workspace())
	if printToken {
		fmt.Fprintf(env.Stdout, "control token (AGENTHOST_CONTROL_TOKEN was not set): %s\n", token)
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		rt.Close()
		return err
	}
	// Closing the runtime ends running turns and event streams, so the
	// server's shutdown does not wait on them.
	cerr := rt.Close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return cerr
}
