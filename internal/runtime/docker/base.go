package docker

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// The base image: a Debian root filesystem made from Debian's packages by
// mmdebstrap on this machine and imported into the engine, so that no
// registry is needed. The runtime image is the base plus the agenthost
// binary (BuildImage with ImageSpec.Base).
const (
	// BaseRepository names base images; the tag is the recipe's key.
	BaseRepository = "agenthost-base"
	// LabelBase is set on a base image to its recipe's key (BaseSpec.Key).
	LabelBase = "agenthost.base"
	// DefaultSuite is the Debian release of the base.
	DefaultSuite = "bookworm"
	// DataDir is the agent loop's data directory in the image (the
	// runtime's database), on a volume of its own, outside /workspace.
	DataDir = "/var/lib/agenthost"
	// baseRecipe changes whenever the way the base is made changes, so
	// that an image made the old way is not reused.
	baseRecipe = "agenthost-base/1"
)

// BasePackages are the Debian packages of the base image (with their
// dependencies, without recommends): a shell and the tools a coding
// agent's commands use (git, curl, python3, node and npm, the usual
// file tools) and bubblewrap for the tool sandbox.
var BasePackages = []string{
	"bash", "bubblewrap", "ca-certificates", "coreutils", "curl", "diffutils", "findutils",
	"git", "grep", "gzip", "less", "nodejs", "npm", "patch", "procps", "python3", "sed",
	"tar", "unzip", "xz-utils",
}

// baseDpkgOptions keep documentation, manuals and translations out of the
// base (copyright files stay).
var baseDpkgOptions = []string{
	"path-exclude=/usr/share/doc/*",
	"path-include=/usr/share/doc/*/copyright",
	"path-exclude=/usr/share/man/*",
	"path-exclude=/usr/share/info/*",
	"path-exclude=/usr/share/locale/*",
}

// baseHook runs (with the root filesystem's path as $1) after the
// packages are installed: the runtime's user, and its two directories
// owned by it, so that new volumes mounted there start owned by it.
var baseHook = fmt.Sprintf(`set -e
chroot "$1" groupadd --gid %[2]d agenthost
chroot "$1" useradd --uid %[1]d --gid %[2]d --home-dir %[3]s --no-create-home --shell /bin/bash agenthost
install -d -o %[1]d -g %[2]d -m 0755 "$1%[3]s"
install -d -o %[1]d -g %[2]d -m 0700 "$1%[4]s"
rm -f "$1/etc/machine-id" "$1/var/lib/dbus/machine-id"
`, UID, GID, Workspace, DataDir)

// BaseSpec describes a base image.
type BaseSpec struct {
	// Suite is the Debian release. Default DefaultSuite.
	Suite string
	// Mirrors are mmdebstrap's MIRROR arguments (a URL, a sources.list
	// line, or a sources file). Default none: mmdebstrap's default
	// Debian mirror, with the release's updates and security suites.
	Mirrors []string
	// Packages are installed with their dependencies. Default
	// BasePackages.
	Packages []string
	// Arch is the engine's GOARCH, which must be this machine's (mmdebstrap
	// runs here). Default this machine's.
	Arch string
	// Progress receives what is going on; nil discards it.
	Progress io.Writer
}

func (s BaseSpec) withDefaults() BaseSpec {
	if s.Suite == "" {
		s.Suite = DefaultSuite
	}
	if len(s.Packages) == 0 {
		s.Packages = BasePackages
	}
	s.Packages = slices.Sorted(slices.Values(s.Packages))
	s.Packages = slices.Compact(s.Packages)
	if s.Arch == "" {
		s.Arch = goruntime.GOARCH
	}
	if s.Progress == nil {
		s.Progress = io.Discard
	}
	return s
}

// Key identifies the base's recipe: the same key, the same image (up to
// the packages' own updates), so an image carrying it is reused.
func (s BaseSpec) Key() string {
	s = s.withDefaults()
	h := sha256.New()
	json.NewEncoder(h).Encode([]any{baseRecipe, s.Suite, s.Arch, s.Mirrors, s.Packages, baseDpkgOptions, baseHook})
	return hex.EncodeToString(h.Sum(nil))
}

// Tag is the base image's name: BaseRepository and the key's start.
func (s BaseSpec) Tag() string { return BaseRepository + ":" + s.Key()[:16] }

// FindBase returns the id of spec's base image when the engine has it
// (tagged Tag and labelled with the key), else "".
func FindBase(ctx context.Context, c *client.Client, spec BaseSpec) (string, error) {
	in, err := c.ImageInspect(ctx, spec.Tag())
	if cerrdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("docker: base image %s: %w", spec.Tag(), err)
	}
	if in.Config == nil || in.Config.Labels[LabelBase] != spec.Key() {
		return "", nil
	}
	return in.ID, nil
}

// EnsureBase returns spec's base image (its tag), building it when the
// engine lacks it. Concurrent callers on this machine wait for one build.
func EnsureBase(ctx context.Context, c *client.Client, spec BaseSpec) (ref string, built bool, err error) {
	spec = spec.withDefaults()
	if id, err := FindBase(ctx, c, spec); err != nil || id != "" {
		if id != "" {
			fmt.Fprintf(spec.Progress, "base image: %s (cached, %s)\n", spec.Tag(), shortImageID(id))
		}
		return spec.Tag(), false, err
	}
	unlock, err := lockFile(filepath.Join(os.TempDir(), "agenthost-base-"+spec.Key()[:16]+".lock"))
	if err != nil {
		return "", false, fmt.Errorf("docker: base image: %w", err)
	}
	defer unlock()
	// Another process may have built it while this one waited.
	if id, err := FindBase(ctx, c, spec); err != nil || id != "" {
		return spec.Tag(), false, err
	}
	if _, err := BuildBase(ctx, c, spec); err != nil {
		return "", false, err
	}
	return spec.Tag(), true, nil
}

// ErrNoMmdebstrap is returned when the base must be built and mmdebstrap
// is not installed.
var ErrNoMmdebstrap = errors.New("mmdebstrap is not installed (apt-get install mmdebstrap), or name a base image with --base IMAGE")

// BuildBase makes spec's base image: mmdebstrap builds a Debian root
// filesystem here and streams it as a tar into the engine's import; the
// image is tagged (spec.Tag) only once mmdebstrap has succeeded, so a
// failed build never passes for a base. It returns the image id.
func BuildBase(ctx context.Context, c *client.Client, spec BaseSpec) (string, error) {
	spec = spec.withDefaults()
	if spec.Arch != goruntime.GOARCH {
		return "", fmt.Errorf("docker: base image: the engine runs %s, this machine %s: build the base on an %s machine, or name one with --base IMAGE", spec.Arch, goruntime.GOARCH, spec.Arch)
	}
	mm, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return "", fmt.Errorf("docker: base image: %w", ErrNoMmdebstrap)
	}
	w := &lockedWriter{w: spec.Progress}
	begin := time.Now()
	fmt.Fprintf(w, "base image: building %s from Debian packages (%s, %d packages: %s)\n", spec.Tag(), spec.Suite, len(spec.Packages), strings.Join(spec.Packages, " "))
	fmt.Fprintf(w, "  this takes a few minutes, once: the image is reused while its recipe (label %s=%s…) is unchanged\n", LabelBase, spec.Key()[:16])

	args := []string{"--variant=minbase", "--format=tar", "--skip=output/dev", "--include=" + strings.Join(spec.Packages, ",")}
	for _, o := range baseDpkgOptions {
		args = append(args, "--dpkgopt="+o)
	}
	args = append(args, "--customize-hook="+baseHook, spec.Suite, "-")
	args = append(args, spec.Mirrors...)
	cmd := exec.CommandContext(ctx, mm, args...)
	cmd.Stdin = nil // a "-" mirror would read sources from stdin; none is passed
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	var tail lastLines
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			tail.add(sc.Text())
			fmt.Fprintf(w, "  %s\n", sc.Text())
		}
	}()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("docker: base image: starting mmdebstrap: %w", err)
	}
	stopTicker := ticker(w, "  still building", 15*time.Second)
	// The tar goes straight into the engine's import, and ends (EOF) only
	// once mmdebstrap has exited with success: a failed build ends it with
	// an error instead, which aborts the import.
	pr, pw := io.Pipe()
	waited := make(chan error, 1)
	go func() {
		_, cerr := io.Copy(pw, stdout)
		if cerr != nil {
			// The import ended early: stop mmdebstrap.
			_ = cmd.Process.Kill()
			_, _ = io.Copy(io.Discard, stdout)
		}
		<-logged
		werr := cmd.Wait()
		if werr != nil {
			werr = fmt.Errorf("mmdebstrap: %w", werr)
		}
		pw.CloseWithError(cmp.Or(cerr, werr, io.EOF))
		waited <- cmp.Or(werr, cerr)
	}()
	id, ierr := importImage(ctx, c, pr, []string{
		"LABEL " + LabelBase + "=" + spec.Key(),
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8",
		`CMD ["/bin/bash"]`,
	})
	pr.CloseWithError(errors.New("the import ended"))
	ierr = cmp.Or(<-waited, ierr)
	stopTicker()
	if ierr != nil {
		if id != "" {
			c.ImageRemove(context.WithoutCancel(ctx), id, client.ImageRemoveOptions{Force: true})
		}
		return "", fmt.Errorf("docker: base image: %w\n%s", ierr, tail.String())
	}
	if _, err := c.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: spec.Tag()}); err != nil {
		return "", fmt.Errorf("docker: base image: tagging %s: %w", spec.Tag(), err)
	}
	size := ""
	if in, err := c.ImageInspect(ctx, id); err == nil && in.Size > 0 {
		size = ", " + humanBytes(in.Size)
	}
	fmt.Fprintf(w, "base image: %s (%s%s) built in %s\n", spec.Tag(), shortImageID(id), size, time.Since(begin).Round(time.Second))
	return id, nil
}

// importImage imports a root filesystem tar as an untagged image with
// changes applied and returns its id.
func importImage(ctx context.Context, c *client.Client, tarball io.Reader, changes []string) (string, error) {
	rc, err := c.ImageImport(ctx, client.ImageImportSource{Source: tarball, SourceName: "-"}, "", client.ImageImportOptions{Changes: changes})
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	var id string
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return id, fmt.Errorf("import: reading the engine's answer: %w", err)
		}
		if m.Error != nil {
			return id, fmt.Errorf("import: %s", m.Error.Message)
		}
		if s := strings.TrimSpace(m.Status); strings.HasPrefix(s, "sha256:") {
			id = s
		}
	}
	if id == "" {
		return "", errors.New("import: the engine reported no image id")
	}
	return id, nil
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// lastLines keeps the last lines of a command's output for its error.
type lastLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *lastLines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if len(l.lines) > 20 {
		l.lines = l.lines[1:]
	}
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func shortImageID(id string) string {
	if len(id) > 19 {
		return id[:19]
	}
	return id
}
