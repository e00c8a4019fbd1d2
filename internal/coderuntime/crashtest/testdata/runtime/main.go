// Command runtime is `agenthost serve --role coding` without the rest of
// agenthost: the crash tests fall back to it when the whole binary does
// not build (other packages being edited), so they still test the runtime.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/agenthost/agenthost/internal/coderuntime"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	wd, _ := os.Getwd()
	s, err := coderuntime.FromEnv(os.Getenv, wd)
	if err == nil {
		s.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		err = coderuntime.Serve(ctx, s, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "runtime:", err)
		os.Exit(1)
	}
}
