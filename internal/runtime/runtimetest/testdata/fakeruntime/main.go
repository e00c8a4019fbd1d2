// Command fakeruntime stands in for `agenthost serve` in runtime driver
// tests: a real process that follows the runtime contract (listen on
// AGENTHOST_PORT on AGENTHOST_HOST or 127.0.0.1, keep data in
// AGENTHOST_WORKSPACE) and can be told to
// misbehave.
//
//	GET /health        200 "ok"
//	GET /env           the whole environment as a JSON object
//	GET /starts        how many times a runtime started on this workspace
//	GET /spawn         starts a child in a process group of its own (as the
//	                   coding bash tool does) and returns its pid
//	GET /log?bytes=N   writes about N bytes of numbered lines to stdout
//	GET /id            its uid, gid, pid, supplementary groups and effective
//	                   capabilities (hex, from /proc/self/status)
//	GET /read?path=P   the file P, or 403 with the error
//	GET /list?path=P   the names in directory P, or 403 with the error
//	GET /signal?pid=N  sends signal 0 to N: 200 when allowed, 403 otherwise
//	GET /alloc?mb=N    allocates and touches N MiB and keeps them
//	GET /fork?n=N      starts up to N sleeping children; says how many started
//	                   (they are killed with the runtime)
//	GET /files?n=N     opens up to N files; says how many opened
//	GET /spawn?setsid=1  the /spawn child calls setsid (leaves the session)
//
// At start it writes its AGENTHOST_RUNTIME_ID to canary.txt in its
// workspace, so that a test can tell one runtime's files from another's.
//
// Given AGENTHOST_LISTEN_FD it serves on that inherited socket instead of
// binding AGENTHOST_PORT.
//
// Flags: -ignore-term keeps running on SIGTERM; -exit-code N with
// -exit-after D exits on its own with code N after D; -serve-after D waits
// D before it listens.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ignoreTerm := flag.Bool("ignore-term", false, "keep running on SIGTERM")
	exitCode := flag.Int("exit-code", -1, "exit on its own with this code (>= 0)")
	exitAfter := flag.Duration("exit-after", 0, "delay before -exit-code")
	child := flag.Bool("child", false, "internal: be the /spawn child (sleep)")
	serveAfter := flag.Duration("serve-after", 0, "delay before listening")
	flag.Parse()
	if *child {
		time.Sleep(10 * time.Minute)
		return
	}

	fmt.Println("fakeruntime: hello on stdout")
	fmt.Fprintln(os.Stderr, "fakeruntime: hello on stderr")

	ws := os.Getenv("AGENTHOST_WORKSPACE")
	if ws == "" {
		fail("AGENTHOST_WORKSPACE is not set")
	}
	starts := filepath.Join(ws, "starts.txt")
	f, err := os.OpenFile(starts, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fail("workspace: %v", err)
	}
	fmt.Fprintf(f, "start pid=%d\n", os.Getpid())
	f.Close()
	if err := os.WriteFile(filepath.Join(ws, "canary.txt"), []byte(os.Getenv("AGENTHOST_RUNTIME_ID")), 0o600); err != nil {
		fail("workspace: %v", err)
	}

	if *exitCode >= 0 {
		go func() {
			time.Sleep(*exitAfter)
			fmt.Fprintf(os.Stderr, "fakeruntime: exiting with code %d\n", *exitCode)
			os.Exit(*exitCode)
		}()
	}

	// A container's runtime is told to listen on all its interfaces
	// (AGENTHOST_HOST=0.0.0.0), since its loopback is unreachable from the
	// host's published port.
	host := os.Getenv("AGENTHOST_HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	time.Sleep(*serveAfter)
	var ln net.Listener
	if fd := os.Getenv("AGENTHOST_LISTEN_FD"); fd != "" {
		n, _ := strconv.Atoi(fd)
		f := os.NewFile(uintptr(n), "listener")
		if ln, err = net.FileListener(f); err != nil {
			fail("AGENTHOST_LISTEN_FD=%s: %v", fd, err)
		}
		f.Close()
	} else if ln, err = net.Listen("tcp", net.JoinHostPort(host, os.Getenv("AGENTHOST_PORT"))); err != nil {
		fail("listen: %v", err)
	}
	srv := &http.Server{Handler: routes(starts)}
	go func() {
		sig := make(chan os.Signal, 4)
		signal.Notify(sig, syscall.SIGTERM)
		for range sig {
			if *ignoreTerm {
				fmt.Println("fakeruntime: ignoring SIGTERM")
				continue
			}
			fmt.Println("fakeruntime: SIGTERM, shutting down")
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			srv.Shutdown(ctx)
			cancel()
			return
		}
	}()
	fmt.Printf("fakeruntime: listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fail("serve: %v", err)
	}
}

func routes(starts string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		writeJSON(w, env)
	})
	mux.HandleFunc("GET /starts", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(starts)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]int{"starts": strings.Count(string(b), "\n")})
	})
	mux.HandleFunc("GET /spawn", func(w http.ResponseWriter, r *http.Request) {
		exe, err := os.Executable()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		cmd := exec.Command(exe, "-child")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if r.URL.Query().Get("setsid") == "1" {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		}
		if err := cmd.Start(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		go cmd.Wait()
		writeJSON(w, map[string]int{"pid": cmd.Process.Pid})
	})
	mux.HandleFunc("GET /log", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("bytes"))
		written := 0
		for i := 0; written < n; i++ {
			k, _ := fmt.Printf("fakeruntime: log line %06d %s\n", i, strings.Repeat("x", 40))
			written += k
		}
		writeJSON(w, map[string]int{"written": written})
	})
	mux.HandleFunc("GET /id", func(w http.ResponseWriter, r *http.Request) {
		groups, _ := os.Getgroups()
		caps := ""
		if b, err := os.ReadFile("/proc/self/status"); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
					caps = strings.TrimSpace(v)
				}
			}
		}
		writeJSON(w, map[string]any{"uid": os.Getuid(), "gid": os.Getgid(), "pid": os.Getpid(), "groups": groups, "capEff": caps})
	})
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("GET /list", func(w http.ResponseWriter, r *http.Request) {
		ents, err := os.ReadDir(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		writeJSON(w, names)
	})
	mux.HandleFunc("GET /signal", func(w http.ResponseWriter, r *http.Request) {
		pid, err := strconv.Atoi(r.URL.Query().Get("pid"))
		if err == nil {
			err = syscall.Kill(pid, 0)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /alloc", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		for range mb {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			hoard = append(hoard, b)
		}
		writeJSON(w, map[string]int{"mb": len(hoard)})
	})
	mux.HandleFunc("GET /fork", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		// Children that are one thread each (sleep, where there is one),
		// and nobody waiting for them: a goroutine blocked in wait4 may
		// take a thread of its own, which the limit counts too.
		argv := []string{"sleep", "600"}
		p, err := exec.LookPath("sleep")
		if err != nil {
			p, err = os.Executable()
			argv = []string{p, "-child"}
		}
		started := 0
		for err == nil && started < n {
			cmd := exec.Command(p, argv[1:]...)
			if err = cmd.Start(); err == nil {
				started++
			}
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		writeJSON(w, map[string]any{"started": started, "error": msg})
	})
	mux.HandleFunc("GET /files", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		var files []*os.File
		defer func() {
			for _, f := range files {
				f.Close()
			}
		}()
		msg := ""
		for len(files) < n {
			f, err := os.Open(os.DevNull)
			if err != nil {
				msg = err.Error()
				break
			}
			files = append(files, f)
		}
		writeJSON(w, map[string]any{"opened": len(files), "error": msg})
	})
	return mux
}

// hoard keeps what /alloc allocated.
var hoard [][]byte

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fakeruntime: "+format+"\n", args...)
	os.Exit(2)
}
