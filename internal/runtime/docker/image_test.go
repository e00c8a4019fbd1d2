package docker

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

// TestImageBuild checks the image BuildImage made for the suite: its
// user, command, environment and files.
func TestImageBuild(t *testing.T) {
	c := engine(t)
	ensureTestImage(t, c)
	in, err := c.ImageInspect(ctx(t), testImage)
	if err != nil {
		t.Fatal(err)
	}
	cfg := in.Config
	if cfg.User != "10001:10001" || !slices.Equal(cfg.Cmd, []string{"fakeruntime"}) || cfg.WorkingDir != Workspace {
		t.Errorf("image config: user %q, cmd %q, workdir %q", cfg.User, cfg.Cmd, cfg.WorkingDir)
	}
	if !slices.Contains(cfg.Env, "PATH="+BinDir) || !slices.Contains(cfg.Env, "SSL_CERT_FILE="+CACertsPath) {
		t.Errorf("image env = %q", cfg.Env)
	}
	if cfg.Labels[LabelImage] != "runtime" {
		t.Errorf("image labels = %v", cfg.Labels)
	}
	created, err := c.ContainerCreate(ctx(t), client.ContainerCreateOptions{Image: testImage})
	if err != nil {
		t.Fatal(err)
	}
	defer c.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	for _, p := range []string{"/etc/passwd", "/etc/group", CACertsPath, BinDir + "/fakeruntime", "/tmp", Workspace} {
		st, err := c.ContainerStatPath(ctx(t), created.ID, client.ContainerStatPathOptions{Path: p})
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if p == "/tmp" && st.Stat.Mode.Perm()|os.ModeSticky != 0o777|os.ModeSticky {
			t.Errorf("/tmp mode = %v", st.Stat.Mode)
		}
	}
}

func TestCheckStatic(t *testing.T) {
	if err := CheckStatic("/bin/ls"); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("CheckStatic(/bin/ls) = %v, want dynamically linked", err)
	}
	if err := CheckStatic("/etc/passwd"); err == nil {
		t.Error("CheckStatic accepted a text file")
	}
	if err := CheckStatic(fakeRuntimeBinary(t)); err != nil {
		t.Errorf("CheckStatic(static fake runtime) = %v", err)
	}
	if _, _, err := StaticBinary(context.Background(), BinaryOptions{Binary: "/bin/ls"}); err == nil {
		t.Error("StaticBinary took a dynamic --binary")
	}
	p, cleanup, err := StaticBinary(context.Background(), BinaryOptions{Binary: fakeRuntimeBinary(t)})
	cleanup()
	if err != nil || p != fakeRuntimeBinary(t) {
		t.Errorf("StaticBinary(given) = %s, %v", p, err)
	}
}

func TestModuleRoot(t *testing.T) {
	wd, _ := os.Getwd()
	root, err := moduleRoot(wd)
	if err != nil || root != filepath.Clean(filepath.Join(wd, "../../..")) {
		t.Errorf("moduleRoot(%s) = %s, %v", wd, root, err)
	}
	if _, err := moduleRoot(t.TempDir()); err == nil {
		t.Error("moduleRoot found the module outside it")
	}
}

func TestReadBuildStream(t *testing.T) {
	in := `{"stream":"Step 1/2 : FROM scratch"}{"stream":"\n"}{"stream":" ---\u003e \n"}` +
		`{"stream":"Step 2/2 : CMD [\"x\"]\n"}{"aux":{"ID":"sha256:abc"}}{"stream":"Successfully built abc\n"}`
	var out strings.Builder
	id, err := readBuildStream(strings.NewReader(in), &out)
	if err != nil || id != "sha256:abc" {
		t.Fatalf("readBuildStream = %q, %v", id, err)
	}
	want := "  Step 1/2 : FROM scratch\n   ---> \n  Step 2/2 : CMD [\"x\"]\n  Successfully built abc\n"
	if out.String() != want {
		t.Errorf("progress =\n%q\nwant\n%q", out.String(), want)
	}
	_, err = readBuildStream(strings.NewReader(`{"stream":"Step 1/1"}{"errorDetail":{"message":"no space left"},"error":"no space left"}`), &out)
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("build error: %v", err)
	}
}

// TestEngineFromEnvironment: DOCKER_HOST chooses the engine, and the API
// version is negotiated down to the engine's.
func TestEngineFromEnvironment(t *testing.T) {
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
	c, err := NewClient()
	if err != nil {
		t.Fatal(err)
	}
	err = Ping(context.Background(), c)
	c.Close()
	if err == nil || !strings.Contains(err.Error(), "tcp://127.0.0.1:1") {
		t.Errorf("Ping of an engine that is not there = %v, want an error naming DOCKER_HOST", err)
	}
	if os.Getenv("AGENTHOST_TEST_DOCKER") == "" && os.Getenv("CI") != "true" {
		return
	}
	t.Setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
	c, err = NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := Ping(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	v, err := c.ServerVersion(context.Background(), client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientVersion() != v.APIVersion && c.ClientVersion() != client.MaxAPIVersion {
		t.Errorf("negotiated API %s with an engine of API %s", c.ClientVersion(), v.APIVersion)
	}
}
