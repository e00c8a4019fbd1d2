package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

type AddArgs struct {
	A float64 `json:"a" jsonschema:"first addend"`
	B float64 `json:"b" jsonschema:"second addend"`
}

func Example() {
	ctx := context.Background()
	// An agent with an add tool, served on a loopback port.
	add := agent.MustTool("add", "Add two numbers.", func(ctx context.Context, a AddArgs) (float64, error) {
		return a.A + a.B, nil
	})
	dir, _ := os.MkdirTemp("", "client-example-")
	defer os.RemoveAll(dir)
	s, err := host.New(ctx, func() (*agent.Agent, error) { return agent.New("calculator", agent.WithTools(add)) },
		host.WithDir(dir), host.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	serving, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- s.Serve(serving, ln) }()
	defer func() { stop(); <-served }()

	// The client signs every request with its identity.
	me, _ := trust.NewIdentity()
	c, err := client.Connect(ctx, "http://"+ln.Addr().String(), client.WithKeys(me))
	if err != nil {
		panic(err)
	}
	res, err := c.Input(ctx, "use add on 2 and 3", client.OnEvent(func(e client.Event) {
		switch e.Type {
		case client.EventToolCall:
			fmt.Println("tool call:", e.Name, string(e.Args))
		case client.EventToolResult:
			fmt.Println("tool result:", e.Result)
		}
	}))
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Result)
	// Output:
	// tool call: add {"a":2,"b":3}
	// tool result: 5
	// [offline demo model] The add tool returned: 5
}
