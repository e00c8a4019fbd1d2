package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// TestServerImage builds the repository's Dockerfile as `make
// image-prebuilt` does — ROOTFS=prebuilt, around a static agenthost built
// here and laid out by deploy/docker/rootfs.sh — through the engine's
// BuildKit, which skips the Go build stage, so no registry is needed. Then
// serve, relay and platform each run in it as the non-root user until the
// image's own HEALTHCHECK (agenthost health) passes, serve on a $PORT of
// its own; a probe of nothing fails and says why.
func TestServerImage(t *testing.T) {
	c := dockerEngine(t)
	ctx := context.Background()
	bin := agenthostBinary(t)
	root := repoRoot(t)

	dir := t.TempDir()
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("sh", filepath.Join(root, "deploy", "docker", "rootfs.sh"), bin, filepath.Join(dir, "dist", "rootfs")).CombinedOutput(); err != nil {
		t.Fatalf("rootfs.sh: %v\n%s", err, out)
	}
	tarball, err := tarDir(dir)
	if err != nil {
		t.Fatal(err)
	}

	// BuildKit keeps what the build made (the context, each COPY) in its
	// cache: the records this build adds are pruned at the end.
	cached := buildCacheIDs(t, c)
	t.Cleanup(func() {
		// One id a call (the engine takes one value per filter), and again
		// while that frees more: a record is kept while a child uses it.
		for pass, pruned := 0, true; pass < 5 && pruned; pass++ {
			pruned = false
			for id := range buildCacheIDs(t, c) {
				if cached[id] {
					continue
				}
				r, err := c.BuildCachePrune(context.Background(), client.BuildCachePruneOptions{Filters: client.Filters{}.Add("id", id)})
				if err != nil {
					t.Errorf("pruning the build's cache: %v", err)
					return
				}
				pruned = pruned || len(r.Report.CachesDeleted) > 0
			}
		}
	})
	tag := fmt.Sprintf("agenthost-imagetest-%d-%d:latest", os.Getpid(), time.Now().UnixNano())
	prebuilt := "prebuilt"
	begin := time.Now()
	resp, err := c.ImageBuild(ctx, bytes.NewReader(tarball), client.ImageBuildOptions{
		Tags: []string{tag}, Dockerfile: "Dockerfile", Version: build.BuilderBuildKit,
		BuildArgs: map[string]*string{"ROOTFS": &prebuilt}, Remove: true, ForceRemove: true,
	})
	if err != nil {
		t.Fatalf("image build: %v", err)
	}
	id, err := readBuildKitStream(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("image build: %v", err)
	}
	t.Cleanup(func() {
		c.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})

	in, err := c.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s (%s) in %s: %.1f MiB", tag, shortImageID(id), time.Since(begin).Round(time.Second), float64(in.Size)/(1<<20))
	cfg := in.Config
	if cfg.User != "10001:10001" || !slices.Equal(cfg.Entrypoint, []string{"agenthost"}) || !slices.Equal(cfg.Cmd, []string{"serve"}) ||
		cfg.WorkingDir != "/data" || !slices.Contains(cfg.Env, "PORT=8080") || cfg.Healthcheck == nil ||
		!slices.Equal(cfg.Healthcheck.Test, []string{"CMD", "agenthost", "health"}) {
		t.Fatalf("image config: %+v %+v", cfg, cfg.Healthcheck)
	}
	if len(in.RootFS.Layers) > 3 || in.Size > 100<<20 {
		t.Errorf("image has %d layers and %d bytes, want a binary's few and under 100 MiB", len(in.RootFS.Layers), in.Size)
	}

	// Its files: the CA bundle, passwd naming the user, /tmp for everyone,
	// /data the user's; no shell.
	cid := runContainer(t, c, tag, []string{"version"}, nil, &container.HealthConfig{Test: []string{"NONE"}})
	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{
		{"/etc/ssl/certs/ca-certificates.crt", 0o644},
		{"/etc/passwd", 0o644},
		{"/usr/local/bin/agenthost", 0o755},
		{"/tmp", 0o777 | os.ModeSticky | os.ModeDir},
	} {
		st, err := c.ContainerStatPath(ctx, cid, client.ContainerStatPathOptions{Path: tc.path})
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
		} else if got := st.Stat.Mode & (os.ModePerm | os.ModeSticky | os.ModeDir); got != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.path, got, tc.mode)
		}
	}
	if _, err := c.ContainerStatPath(ctx, cid, client.ContainerStatPathOptions{Path: "/bin/sh"}); err == nil {
		t.Error("the image has a shell")
	}

	// Every server runs in it, healthy by the image's own check (run more
	// often than the image says, so the test does not wait 30 s).
	for _, tc := range []struct {
		name string
		cmd  []string
		env  []string
	}{
		{name: "serve", cmd: []string{"serve"}, env: []string{"PORT=9321"}},
		{name: "relay", cmd: []string{"relay"}},
		{name: "platform", cmd: []string{"platform", "--insecure-no-sandbox"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cid := runContainer(t, c, tag, tc.cmd, tc.env, &container.HealthConfig{Interval: 250 * time.Millisecond, Timeout: 10 * time.Second, Retries: 3})
			deadline := time.Now().Add(90 * time.Second)
			for {
				st, err := c.ContainerInspect(ctx, cid, client.ContainerInspectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				s := st.Container.State
				if s.Health != nil && s.Health.Status == container.Healthy {
					last := s.Health.Log[len(s.Health.Log)-1]
					if last.ExitCode != 0 || !strings.Contains(last.Output, "/health: 200 OK") {
						t.Errorf("health check: exit %d %q", last.ExitCode, last.Output)
					}
					if tc.env != nil && !strings.Contains(last.Output, "127.0.0.1:9321") {
						t.Errorf("the check did not probe $PORT: %q", last.Output)
					}
					break
				}
				if !s.Running || s.Health != nil && s.Health.Status == container.Unhealthy || time.Now().After(deadline) {
					t.Fatalf("%s: state %+v health %+v\n%s", tc.name, s, s.Health, containerLogs(t, c, cid))
				}
				time.Sleep(100 * time.Millisecond)
			}
			top, err := c.ContainerTop(ctx, cid, client.ContainerTopOptions{Arguments: []string{"-o", "pid,uid,comm"}})
			if err != nil {
				t.Fatal(err)
			}
			uid := slices.Index(top.Titles, "UID")
			for _, p := range top.Processes {
				if uid < 0 || p[uid] != "10001" {
					t.Errorf("process %v (%v) does not run as 10001", p, top.Titles)
				}
			}
		})
	}

	// A probe of nothing: exit 1, and why.
	cid = runContainer(t, c, tag, []string{"health", "127.0.0.1:1"}, nil, &container.HealthConfig{Test: []string{"NONE"}})
	wait := c.ContainerWait(ctx, cid, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-wait.Result:
		logs := containerLogs(t, c, cid)
		if r.StatusCode != 1 || !strings.Contains(logs, "http://127.0.0.1:1/health: no answer") {
			t.Errorf("health of nothing: exit %d\n%s", r.StatusCode, logs)
		}
	case err := <-wait.Error:
		t.Fatal(err)
	}
}

// buildCacheIDs lists the engine's BuildKit cache records.
func buildCacheIDs(t *testing.T, c *client.Client) map[string]bool {
	du, err := c.DiskUsage(context.Background(), client.DiskUsageOptions{BuildCache: true, Verbose: true})
	if err != nil {
		t.Fatalf("build cache: %v", err)
	}
	ids := map[string]bool{}
	for _, r := range du.BuildCache.Items {
		ids[r.ID] = true
	}
	return ids
}

// runContainer creates and starts a container of image (removed at the
// test's end) and returns its id.
func runContainer(t *testing.T, c *client.Client, image string, cmd, env []string, hc *container.HealthConfig) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("agenthost-imagetest-%d-%d", os.Getpid(), time.Now().UnixNano())
	cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   name,
		Config: &container.Config{Image: image, Cmd: cmd, Env: env, Healthcheck: hc},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	if _, err := c.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	return cr.ID
}

func containerLogs(t *testing.T, c *client.Client, id string) string {
	rc, err := c.ContainerLogs(context.Background(), id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	var out bytes.Buffer
	stdcopy.StdCopy(&out, &out, rc)
	return out.String()
}

// readBuildKitStream reads the engine's answer to a BuildKit build: its
// progress is opaque (BuildKit's own encoding), its errors and the image
// id are not.
func readBuildKitStream(r io.Reader) (string, error) {
	dec := json.NewDecoder(r)
	var id string
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", err
		}
		if m.Error != nil {
			return "", errors.New(m.Error.Message)
		}
		if m.ID == "moby.image.id" && m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*m.Aux, &aux) == nil {
				id = aux.ID
			}
		}
	}
	if id == "" {
		return "", errors.New("the engine reported no image id")
	}
	return id, nil
}

// tarDir is dir as a build context: modes kept (/tmp's 1777 among them),
// owned by root.
func tarDir(dir string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), tw.Close()
}
