//go:build linux

package coderuntime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agenthost/agenthost/agent/mcptools"
)

// inheritable returns a descriptor of a listening socket on 127.0.0.1
// without close-on-exec, as a runtime finds the one its driver hands over,
// and the socket's address.
func inheritable(t *testing.T) (int, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		t.Fatal(err)
	}
	return fd, ln.Addr().String()
}

// TestServeInheritedListener: with AGENTHOST_LISTEN_FD the runtime serves
// on the socket its driver bound, and the inherited descriptor is gone
// before the runtime starts anything: no child (MCP server, tool) can
// inherit the runtime's listening socket and take its requests, control
// token included.
func TestServeInheritedListener(t *testing.T) {
	fd, addr := inheritable(t)
	s, err := FromEnv(func(k string) string {
		return map[string]string{"AGENTHOST_LISTEN_FD": strconv.Itoa(fd), "AGENTHOST_CONTROL_TOKEN": testToken,
			"AGENTHOST_MODEL": "offline/demo", "AGENTHOST_SANDBOX": testSandbox, "AGENTHOST_PORT": "1"}[k]
	}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if s.ListenFD != fd {
		t.Fatalf("ListenFD = %d, want %d", s.ListenFD, fd)
	}
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	// An MCP server, started while the runtime starts, records the
	// descriptors it was given (and then fails, so it is left out).
	s.MCPServers = map[string]mcptools.Config{"fds": {Type: mcptools.TypeLocal,
		Command: []string{"sh", "-c", "ls -l /proc/self/fd/ > fds.txt; exit 3"}}}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, s, pw); pw.Close() }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	go io.Copy(io.Discard, pr) // the banner, and whatever follows
	// The socket was listening before Serve ran: one request, no retry.
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/health")
	if err != nil {
		t.Fatalf("GET /health on the inherited socket: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health on the inherited socket: %s", resp.Status)
	}
	fds, err := os.ReadFile(filepath.Join(s.Workspace, "fds.txt"))
	if err != nil {
		t.Fatalf("the MCP server did not record its descriptors: %v", err)
	}
	if strings.Contains(string(fds), "socket:") {
		t.Errorf("an MCP server started by the runtime holds a socket (the runtime's listening socket?):\n%s", fds)
	}
	// Closed, or (if its number was reused since) close-on-exec.
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err == nil && flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("descriptor %d is still open without close-on-exec: the runtime's children inherit its listening socket", fd)
	} else if err != nil && !errors.Is(err, unix.EBADF) {
		t.Fatal(err)
	}
}

// TestServeInheritedListenerRefused: a descriptor that is not a listening
// socket fails Serve, naming the variable and how to fix it.
func TestServeInheritedListenerRefused(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "not-a-socket"))
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := Settings{Config: Config{Workspace: t.TempDir(), Token: testToken, Model: "offline/demo", Sandbox: testSandbox}, ListenFD: fd}
	err = Serve(context.Background(), s, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "AGENTHOST_LISTEN_FD="+strconv.Itoa(fd)+" is not a listening socket") {
		t.Fatalf("Serve on a file = %v, want a refusal naming AGENTHOST_LISTEN_FD", err)
	}
	for _, bad := range []string{"x", "0", "2", "-1"} {
		if _, err := FromEnv(func(k string) string {
			if k == "AGENTHOST_LISTEN_FD" {
				return bad
			}
			return ""
		}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "AGENTHOST_LISTEN_FD") {
			t.Errorf("AGENTHOST_LISTEN_FD=%s: %v, want a refusal naming it", bad, err)
		}
	}
}
