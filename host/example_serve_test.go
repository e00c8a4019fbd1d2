package host_test

import (
	"context"
	"log"
	"os"
	"os/signal"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
)

type AddArgs struct {
	A float64 `json:"a" jsonschema:"first addend"`
	B float64 `json:"b" jsonschema:"second addend"`
}

func ExampleServe() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	add := agent.MustTool("add", "Add two numbers.", func(ctx context.Context, a AddArgs) (float64, error) {
		return a.A + a.B, nil
	})
	newAgent := func() (*agent.Agent, error) {
		return agent.New("calculator", agent.WithTools(add)) // a fresh agent for every request
	}
	// Listens on :8000 (or host.yaml's port) until Ctrl-C, then shuts down gracefully.
	if err := host.Serve(ctx, newAgent, host.WithTrust("open")); err != nil {
		log.Fatal(err)
	}
}
