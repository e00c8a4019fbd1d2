package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"
)

// modulePath is the module whose ./cmd/agenthost StaticBinary builds.
const modulePath = "github.com/agenthost/agenthost"

// BinaryOptions says where StaticBinary finds or builds the agenthost
// binary for an image.
type BinaryOptions struct {
	// Binary, when set, is used as is (it must be static).
	Binary string
	// Arch is the engine's GOARCH. Default: this process's.
	Arch string
	// Source is a directory inside the agenthost module, for building.
	// Default: the working directory.
	Source string
	// Ldflags are passed to go build (e.g. the version).
	Ldflags string
	// FromSource skips the running executable: always build (a test
	// binary is no agenthost).
	FromSource bool
	// Progress receives what is going on; nil discards it.
	Progress io.Writer
}

// StaticBinary returns a static Linux agenthost binary for an image of
// arch: opts.Binary when given; else the running executable when it is
// static and of that architecture; else one built with CGO_ENABLED=0 go
// build ./cmd/agenthost from the module around opts.Source, in a
// temporary directory that cleanup removes.
func StaticBinary(ctx context.Context, opts BinaryOptions) (path string, cleanup func(), err error) {
	cleanup = func() {}
	w := opts.Progress
	if w == nil {
		w = io.Discard
	}
	if opts.Arch == "" {
		opts.Arch = goruntime.GOARCH
	}
	if opts.Binary != "" {
		if err := CheckStatic(opts.Binary); err != nil {
			return "", cleanup, err
		}
		if a := ELFArch(opts.Binary); a != opts.Arch {
			return "", cleanup, fmt.Errorf("docker: image: %s is for %q, the engine runs %s", opts.Binary, a, opts.Arch)
		}
		fmt.Fprintf(w, "binary: %s (given)\n", opts.Binary)
		return opts.Binary, cleanup, nil
	}
	if exe, err := os.Executable(); err == nil && !opts.FromSource && goruntime.GOOS == "linux" && CheckStatic(exe) == nil && ELFArch(exe) == opts.Arch {
		fmt.Fprintf(w, "binary: %s (this agenthost, statically linked)\n", exe)
		return exe, cleanup, nil
	}
	root, err := moduleRoot(opts.Source)
	if err != nil {
		return "", cleanup, fmt.Errorf("docker: image: this agenthost is not a static Linux/%s binary, so one must be built from source, but %w; pass --binary with a static build (CGO_ENABLED=0 go build ./cmd/agenthost)", opts.Arch, err)
	}
	dir, err := os.MkdirTemp("", "agenthost-image-")
	if err != nil {
		return "", cleanup, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	out := filepath.Join(dir, "agenthost")
	args := []string{"build", "-trimpath", "-o", out}
	if opts.Ldflags != "" {
		args = append(args, "-ldflags", opts.Ldflags)
	}
	args = append(args, "./cmd/agenthost")
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = a
		if strings.ContainsAny(a, " \t") {
			shown[i] = "'" + a + "'"
		}
	}
	fmt.Fprintf(w, "binary: building a static agenthost for linux/%s from %s\n  CGO_ENABLED=0 GOOS=linux GOARCH=%s go %s\n", opts.Arch, root, opts.Arch, strings.Join(shown, " "))
	begin := time.Now()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+opts.Arch)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	stopTicker := ticker(w, "  still building", 10*time.Second)
	err = cmd.Run()
	stopTicker()
	if err != nil {
		cleanup()
		return "", func() {}, fmt.Errorf("docker: image: go build: %w\n%s", err, stderr.Bytes())
	}
	if fi, err := os.Stat(out); err == nil {
		fmt.Fprintf(w, "  built in %s (%s)\n", time.Since(begin).Round(100*time.Millisecond), humanBytes(fi.Size()))
	}
	return out, cleanup, nil
}

// ticker prints msg every period until stopped, so a long step shows it
// is alive.
func ticker(w io.Writer, msg string, period time.Duration) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	begin := time.Now()
	go func() {
		defer close(exited)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "%s (%s)\n", msg, time.Since(begin).Round(time.Second))
			}
		}
	}()
	// stop waits for the goroutine, so no line is written to w after it
	// returns (the caller goes on writing to w).
	return func() { close(done); <-exited }
}

// moduleRoot finds the directory of the agenthost module's go.mod at or
// above dir.
func moduleRoot(dir string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return "", err
		}
	}
	if _, err := exec.LookPath("go"); err != nil {
		return "", errors.New("the go command is not installed")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(strings.TrimPrefix(first, "module")) == modulePath {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not inside the %s source (use --source)", dir, modulePath)
		}
	}
}
