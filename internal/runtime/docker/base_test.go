package docker

import (
	"context"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// TestBaseKey: the key (hence the cache) follows the recipe, not the
// order its packages were named in.
func TestBaseKey(t *testing.T) {
	def := BaseSpec{}
	if def.Key() != (BaseSpec{Packages: BasePackages, Suite: DefaultSuite}).Key() {
		t.Error("the defaults spelled out give another key")
	}
	rev := make([]string, len(BasePackages))
	for i, p := range BasePackages {
		rev[len(rev)-1-i] = p
	}
	if def.Key() != (BaseSpec{Packages: append(rev, "bash")}).Key() {
		t.Error("the package order (or a repeated package) changes the key")
	}
	for name, other := range map[string]BaseSpec{
		"suite":    {Suite: "trixie"},
		"packages": {Packages: append([]string{"make"}, BasePackages...)},
		"mirrors":  {Mirrors: []string{"http://mirror.invalid/debian"}},
		"arch":     {Arch: "arm64"},
	} {
		if other.Key() == def.Key() {
			t.Errorf("another %s, the same key", name)
		}
	}
	if tag := def.Tag(); !strings.HasPrefix(tag, BaseRepository+":") || len(tag) != len(BaseRepository)+1+16 {
		t.Errorf("Tag = %q", tag)
	}
}

// TestBaseBuildFailure: a base whose build fails (here a release Debian
// does not have, which fails at once) is an error quoting mmdebstrap, and
// leaves no image that could pass for the base.
func TestBaseBuildFailure(t *testing.T) {
	c := engine(t)
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mmdebstrap is missing: scripts/service-docker.sh installs it")
		}
		t.Skip("no mmdebstrap: run ./scripts/service-docker.sh")
	}
	t.Parallel()
	spec := BaseSpec{Suite: "agenthost-no-such-suite"}
	var progress strings.Builder
	spec.Progress = &progress
	bctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := BuildBase(bctx, c, spec)
	if err == nil {
		c.ImageRemove(context.Background(), spec.Tag(), client.ImageRemoveOptions{Force: true})
		t.Fatal("a base of a release Debian lacks was built")
	}
	if !strings.Contains(err.Error(), "mmdebstrap") || !strings.Contains(err.Error(), "agenthost-no-such-suite") {
		t.Errorf("error = %v; want mmdebstrap's last lines, naming the release", err)
	}
	if !strings.Contains(progress.String(), "base image: building "+spec.Tag()) {
		t.Errorf("progress = %q", progress.String())
	}
	if id, err := FindBase(ctx(t), c, spec); err != nil || id != "" {
		t.Errorf("FindBase after a failed build = %q, %v", id, err)
	}
	imgs, err := c.ImageList(ctx(t), client.ImageListOptions{All: true, Filters: make(client.Filters).Add("label", LabelBase+"="+spec.Key())})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs.Items) != 0 {
		t.Errorf("a failed build left %d images labelled as its base", len(imgs.Items))
	}
}

// TestBaseWrongArch: a base for another architecture than this machine's
// is refused before anything runs.
func TestBaseWrongArch(t *testing.T) {
	arch := "arm64"
	if arch == goruntime.GOARCH {
		arch = "amd64"
	}
	_, err := BuildBase(context.Background(), nil, BaseSpec{Arch: arch})
	if err == nil || !strings.Contains(err.Error(), "--base IMAGE") {
		t.Errorf("BuildBase for %s = %v", arch, err)
	}
}
