package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/client"
	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/relay"
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
	// The announcer connects in the background; its status callback says
	// when the relay has accepted the agent.
	announced := make(chan struct{}, 1)
	onStatus := relay.WithStatusFunc(func(st relay.Status) {
		if st.Announced {
			select {
			case announced <- struct{}{}:
			default:
			}
		}
	})
	s, err := host.New(ctx, func() (*agent.Agent, error) { return agent.New("assistant") },
		host.WithDir(dir), host.WithRelayURL(r.URL()), host.WithLogger(quiet), host.WithRelayOptions(onStatus))
	if err != nil {
		panic(err)
	}
	defer s.Shutdown(ctx)
	if err := s.Start(); err != nil {
		panic(err)
	}
	<-announced

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
