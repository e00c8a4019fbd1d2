package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/runtime/docker"
	"github.com/agenthost/agenthost/internal/runtime/runtimetest"
)

// dockerEngine skips the test without a Docker engine (outside CI).
func dockerEngine(t *testing.T) *client.Client {
	t.Helper()
	if os.Getenv("AGENTHOST_TEST_DOCKER") == "" && os.Getenv("CI") != "true" {
		t.Skip("no Docker engine: run ./scripts/service-docker.sh and set AGENTHOST_TEST_DOCKER=1")
	}
	c, err := docker.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := docker.Ping(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestImageUsage(t *testing.T) {
	for _, args := range [][]string{{"image"}, {"image", "push"}, {"image", "build", "extra"}} {
		if code, _, _ := runCLI(context.Background(), t.TempDir(), args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	code, _, stderr := runCLI(context.Background(), t.TempDir(), "platform", "--driver", "docker", "--runtime-memory", "lots")
	if code != 2 || !strings.Contains(stderr, "--runtime-memory") {
		t.Errorf("bad --runtime-memory: exit %d %q", code, stderr)
	}
	code, _, stderr = runCLI(context.Background(), t.TempDir(), "platform", "--driver", "kubernetes")
	if code != 2 || !strings.Contains(stderr, "process or docker") {
		t.Errorf("unknown driver: exit %d %q", code, stderr)
	}
}

// TestImageBuild builds an image from a given static binary (the fake
// runtime) through the command, and checks the platform refuses to start
// with an image the engine lacks.
func TestImageBuild(t *testing.T) {
	c := dockerEngine(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "agenthost")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = runtimetest.FakeRuntimeSource()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx := context.Background()

	code, _, stderr := runCLI(ctx, dir, "image", "build", "--binary", "/bin/ls", "--tag", "agenthost-clitest:never")
	if code != 1 || !strings.Contains(stderr, "dynamically linked") {
		t.Errorf("dynamic --binary: exit %d %q", code, stderr)
	}

	code, _, stderr = runCLI(ctx, dir, "image", "build", "--binary", "agenthost", "--base", "agenthost-no-such-base:never", "--tag", "agenthost-clitest:never")
	if code != 1 || !strings.Contains(stderr, "never pulled") {
		t.Errorf("missing --base: exit %d %q", code, stderr)
	}

	// FROM scratch: no tools, said so.
	tag := fmt.Sprintf("agenthost-clitest-%d:scratch", os.Getpid())
	code, out, stderr := runCLI(ctx, dir, "image", "build", "--binary", "agenthost", "--base", "scratch", "--tag", tag)
	if code != 0 || !strings.Contains(out, "Built "+tag) || !strings.Contains(out, "Step") || !strings.Contains(out, "bash tool fails") || !strings.Contains(out, "--driver docker --image "+tag) {
		t.Fatalf("image build --base scratch = %d\n%s\n%s", code, out, stderr)
	}
	t.Cleanup(func(tag string) func() {
		return func() { c.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true}) }
	}(tag))
	in, err := c.ImageInspect(ctx, tag)
	if err != nil || in.Config.User != "10001:10001" || in.Config.Labels[docker.LabelImageBase] != "scratch" {
		t.Fatalf("built image: %v, %+v", err, in.Config)
	}

	// The default: on the Debian base, made when missing (scripts/service-docker.sh
	// makes it before the suite, so here it is found).
	if _, err := exec.LookPath("mmdebstrap"); err != nil && os.Getenv("CI") != "true" {
		if id, _ := docker.FindBase(ctx, c, docker.BaseSpec{}); id == "" {
			t.Skip("no base image and no mmdebstrap: run ./scripts/service-docker.sh")
		}
	}
	code, out, stderr = runCLI(ctx, dir, "image", "base")
	baseTag := docker.BaseSpec{}.Tag()
	if code != 0 || !strings.Contains(out, "Base image: "+baseTag) {
		t.Fatalf("image base = %d\n%s\n%s", code, out, stderr)
	}
	tag = fmt.Sprintf("agenthost-clitest-%d:debian", os.Getpid())
	code, out, stderr = runCLI(ctx, dir, "image", "build", "--binary", "agenthost", "--tag", tag)
	if code != 0 || !strings.Contains(out, "base image: "+baseTag+" (cached") || !strings.Contains(out, "Built "+tag) {
		t.Fatalf("image build = %d\n%s\n%s", code, out, stderr)
	}
	t.Cleanup(func(tag string) func() {
		return func() { c.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true}) }
	}(tag))
	in, err = c.ImageInspect(ctx, tag)
	if err != nil || in.Config.User != "10001:10001" || in.Config.Labels[docker.LabelImageBase] != baseTag || !slices.Contains(in.Config.Env, "AGENTHOST_DATA_DIR="+docker.DataDir) {
		t.Fatalf("built image: %v, %+v", err, in.Config)
	}

	code, _, stderr = runCLI(ctx, dir, "platform", "--driver", "docker", "--image", "agenthost-clitest:missing", "--port", "0")
	if code != 1 || !strings.Contains(stderr, "agenthost image build") {
		t.Errorf("platform with a missing image: exit %d %q", code, stderr)
	}
}
