package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/relay/relayserver"
	"github.com/agenthost/agenthost/trust"
)

func Example() {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	// A relay (agenthost relay --port 8765 does the same).
	r, err := relayserver.New(relayserver.Config{Addr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		panic(err)
	}
	if err := r.Start(); err != nil {
		panic(err)
	}
	defer r.Shutdown(ctx)

	// An agent that listens nowhere: it dials out to the relay and announces.
	dir, _ := os.MkdirTemp("", "relay-example-")
	defer os.RemoveAll(dir)
	s, err := host.New(ctx, func() (*agent.Agent, error) { return agent.New("assistant") },
		host.WithDir(dir), host.WithRelayURL(r.URL()), host.WithLogger(quiet))
	if err != nil {
		panic(err)
	}
	defer s.Shutdown(ctx)
	if err := s.Start(); err != nil {
		panic(err)
	}
	for st, _, _ := s.RelayStatus(); !st.Announced; st, _, _ = s.RelayStatus() {
		time.Sleep(10 * time.Millisecond) // the announcer connects in the background
	}

	// A client reaches it by address alone.
	me, _ := trust.NewIdentity()
	c, err := client.Connect(ctx, s.Address(), client.WithRelay(r.URL()), client.WithKeys(me))
	if err != nil {
		panic(err)
	}
	res, err := c.Input(ctx, "My name is Ada.")
	if err != nil {
		panic(err)
	}
	fmt.Println("relayed:", c.Relayed())
	fmt.Println(res.Result)
	// Output:
	// relayed: true
	// [offline demo model] Nice to meet you, Ada! I'll remember that.
}
