package egress

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// publicServer serves "public-canary" on 198.51.100.2 inside a network
// namespace made for the test, reached through a veth pair whose host end
// is 198.51.100.1: a server at an address the policy treats as public,
// without leaving this machine. It needs root and ip(8).
func publicServer(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("making a network namespace needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip(8) to make a network namespace with")
	}
	ns := fmt.Sprintf("ahegress%d", os.Getpid())
	host, peer := fmt.Sprintf("ahe%da", os.Getpid()%100000), fmt.Sprintf("ahe%db", os.Getpid()%100000)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() }) // takes the veth pair with it
	ip("link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns)
	ip("addr", "add", "198.51.100.1/24", "dev", host)
	ip("link", "set", host, "up")
	ip("-n", ns, "addr", "add", "198.51.100.2/24", "dev", peer)
	ip("-n", ns, "link", "set", peer, "up")
	ip("-n", ns, "link", "set", "lo", "up")

	// Listen from a thread moved into the namespace; the socket stays
	// there, and the thread, never unlocked, ends with its goroutine.
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp", "198.51.100.2:0")
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "public-canary") })}
	go srv.Serve(r.ln)
	t.Cleanup(func() { srv.Close() })
	return r.ln.Addr().String()
}

// TestDocumentationRangeIsPublic: a server at 198.51.100.2 (TEST-NET-2)
// is reached with the default policy, directly and through the proxy.
func TestDocumentationRangeIsPublic(t *testing.T) {
	addr := publicServer(t)
	c, err := (&Dialer{}).DialContext(ctxT(t), "tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
	client, _ := proxyRig(t, "", nil)
	if code, body, err := get(client, "http://"+addr+"/"); err != nil || code != 200 || body != "public-canary" {
		t.Fatalf("through the proxy: %d %q %v", code, body, err)
	}
}
