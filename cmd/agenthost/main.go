// Command agenthost puts AI agents on the network: it runs agents, hosts
// them over HTTP and WebSocket, relays to agents behind NAT and runs a
// multi-tenant platform of agents. See `agenthost help`.
package main

import (
	"os"

	"github.com/agenthost/agenthost/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
