package isolationtest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsCanaries makes a network namespace reachable from the host through
// a veth pair, with one HTTP canary on a private address (10.x.y.2) and
// one on a documentation-range address routed like a public one
// (198.51.100.n), and returns their URLs. Everything is removed when the
// test ends; names and addresses are random so parallel tests do not meet.
func netnsCanaries(t *testing.T, canary string) (private, public string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		p, q, err := tryNetns(t, canary)
		if err == nil {
			return p, q
		}
		if attempt == 3 {
			t.Fatalf("network namespace for the egress canaries: %v (needs root and iproute2)", err)
		}
	}
}

func tryNetns(t *testing.T, canary string) (string, string, error) {
	id := fmt.Sprintf("%06x", rand.IntN(1<<24))
	ns, hostIf, nsIf := "ahiso"+id, "ahh"+id, "ahn"+id
	x, y, n := 16+rand.IntN(200), rand.IntN(64)*4, 2+rand.IntN(250)
	hostIP, nsIP := fmt.Sprintf("10.%d.%d.1", x, y), fmt.Sprintf("10.%d.%d.2", x, y)
	pubIP := fmt.Sprintf("198.51.100.%d", n)
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	run := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	steps := []struct {
		do   []string
		undo []string
	}{
		{[]string{"netns", "add", ns}, []string{"netns", "del", ns}},
		{[]string{"link", "add", hostIf, "type", "veth", "peer", "name", nsIf}, []string{"link", "del", hostIf}},
		{[]string{"link", "set", nsIf, "netns", ns}, nil},
		{[]string{"addr", "add", hostIP + "/30", "dev", hostIf}, nil},
		{[]string{"link", "set", hostIf, "up"}, nil},
		{[]string{"-n", ns, "addr", "add", nsIP + "/30", "dev", nsIf}, nil},
		{[]string{"-n", ns, "addr", "add", pubIP + "/32", "dev", nsIf}, nil},
		{[]string{"-n", ns, "link", "set", nsIf, "up"}, nil},
		{[]string{"-n", ns, "link", "set", "lo", "up"}, nil},
		{[]string{"-n", ns, "route", "add", "default", "via", hostIP}, nil},
		{[]string{"route", "add", pubIP + "/32", "via", nsIP}, []string{"route", "del", pubIP + "/32"}},
	}
	for _, s := range steps {
		if err := run(s.do...); err != nil {
			cleanup()
			return "", "", err
		}
		if s.undo != nil {
			u := s.undo
			undo = append(undo, func() { _ = run(u...) })
		}
	}
	// Containers reach the namespace through the host's forwarding.
	_ = exec.Command("sysctl", "-qw", "net.ipv4.ip_forward=1").Run()
	privLn, pubLn, err := listenIn(ns, nsIP+":0", pubIP+":0")
	if err != nil {
		cleanup()
		return "", "", err
	}
	serve := func(ln net.Listener, body string) {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		undo = append(undo, func() { srv.Close() })
	}
	serve(privLn, canary+"-private")
	serve(pubLn, canary+"-public")
	t.Cleanup(cleanup)
	return "http://" + privLn.Addr().String(), "http://" + pubLn.Addr().String(), nil
}

// listenIn opens TCP listeners inside the named network namespace: a
// socket belongs to the namespace of the thread that made it, so one
// locked thread enters the namespace, listens and comes back.
func listenIn(ns string, addrs ...string) (net.Listener, net.Listener, error) {
	type result struct {
		lns []net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var res result
		defer func() { ch <- res }()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			res.err = err
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			res.err = err
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			res.err = err
			return
		}
		for _, a := range addrs {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				res.err = err
				break
			}
			res.lns = append(res.lns, ln)
		}
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// This thread is in the wrong namespace: let it die with the
			// goroutine instead of returning it to the pool.
			res.err = fmt.Errorf("returning from namespace %s: %w", ns, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	res := <-ch
	if res.err != nil {
		for _, ln := range res.lns {
			ln.Close()
		}
		return nil, nil, res.err
	}
	return res.lns[0], res.lns[1], nil
}
