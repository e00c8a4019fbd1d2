package host_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/testutil"
)

// A second host on the same .co/ is refused, naming the first one's pid
// and address, instead of sharing its database and interrupting its runs;
// once the first has shut down the directory is free again.
func TestSecondHostOnCoDirRefused(t *testing.T) {
	dir := t.TempDir()
	opts := []host.Option{host.WithDir(dir), host.WithCoDir(dir + "/.co"), host.WithLogger(quietLogger())}
	ctx := context.Background()
	first, err := host.New(ctx, factory("offline/demo"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- first.Serve(sctx, ln) }()
	// The lock file names the address once the host serves.
	testutil.Eventually(t, 10*time.Second, "host.lock naming the address", func() bool {
		b, _ := os.ReadFile(dir + "/.co/host.lock")
		return strings.Contains(string(b), ln.Addr().String())
	})

	_, err = host.New(ctx, factory("offline/demo"), opts...)
	if !errors.Is(err, host.ErrCoDirInUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("second host: %v, want ErrCoDirInUse naming pid and address", err)
	}

	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	again, err := host.New(ctx, factory("offline/demo"), opts...)
	if err != nil {
		t.Fatalf("after the first host stopped: %v", err)
	}
	again.Shutdown(ctx)
}
