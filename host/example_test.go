package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/host"
)

// A Server is an http.Handler: Start it, mount it in your own server, and
// Shutdown stops everything it started.
func ExampleServer_Start() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "host-example-") // keys and sessions go to dir/.co
	defer os.RemoveAll(dir)
	s, err := host.New(ctx, func() (*agent.Agent, error) { return agent.New("assistant") },
		host.WithDir(dir), host.WithTrust("open"), host.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer s.Shutdown(ctx)
	if err := s.Start(); err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: s}
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)

	resp, err := http.Post("http://"+ln.Addr().String()+"/input", "application/json",
		strings.NewReader(`{"prompt": "My name is Ada."}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Result string `json:"result"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	fmt.Println(out.Status)
	fmt.Println(out.Result)
	// Output:
	// done
	// [offline demo model] Nice to meet you, Ada! I'll remember that.
}
