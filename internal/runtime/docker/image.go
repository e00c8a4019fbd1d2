package docker

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// Image layout: the runtime's binary on PATH, CA certificates, a non-root
// user and the directories a read-only root needs.
const (
	// BinDir holds the image's binary.
	BinDir = "/usr/local/bin"
	// CACertsPath is where the image's CA bundle is (SSL_CERT_FILE).
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	// UID and GID of the image's user, "agenthost".
	UID, GID = 10001, 10001
	// LabelImage marks images built by BuildImage.
	LabelImage = "agenthost.image"
	// LabelImageBase names the image a runtime image was built on.
	LabelImageBase = "agenthost.image.base"
	// ImagePath is the runtime image's PATH.
	ImagePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// ImageSpec describes an image BuildImage makes.
type ImageSpec struct {
	// Tag names the image. Default DefaultImage.
	Tag string
	// Binary is the static Linux executable to install in BinDir.
	Binary string
	// BinaryName is its name there. Default "agenthost".
	BinaryName string
	// CACerts is the CA bundle to install. Default
	// /etc/ssl/certs/ca-certificates.crt of this host.
	CACerts string
	// Cmd is the image's default command. Default
	// ["agenthost", "serve", "--role", "coding"].
	Cmd []string
	// Base is the image to build on: the Debian base (EnsureBase) or an
	// operator's. Empty builds FROM scratch, with the CA bundle and a
	// passwd of its own: enough for a static runtime that runs no tools
	// (the tests' fake runtime), not for a coding agent, whose bash tool
	// needs a shell.
	Base string
	// Progress receives the build's progress lines; nil discards them.
	Progress io.Writer
}

// BuildImage builds spec's image on spec.Base (or FROM scratch) through
// the engine's build API, with the context made in memory (no Dockerfile
// on disk, no registry, nothing run inside a container), and returns the
// image id.
func BuildImage(ctx context.Context, c *client.Client, spec ImageSpec) (string, error) {
	if spec.Tag == "" {
		spec.Tag = DefaultImage
	}
	if spec.BinaryName == "" {
		spec.BinaryName = "agenthost"
	}
	if spec.CACerts == "" {
		spec.CACerts = CACertsPath
	}
	if len(spec.Cmd) == 0 {
		spec.Cmd = []string{spec.BinaryName, "serve", "--role", "coding"}
	}
	progress := spec.Progress
	if progress == nil {
		progress = io.Discard
	}
	if err := CheckStatic(spec.Binary); err != nil {
		return "", err
	}
	tarball, err := buildContext(spec)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(progress, "sending a %s build context to the engine at %s\n", humanBytes(int64(len(tarball))), c.DaemonHost())
	resp, err := c.ImageBuild(ctx, bytes.NewReader(tarball), client.ImageBuildOptions{
		Tags:        []string{spec.Tag},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{LabelImage: "runtime", LabelImageBase: cmp.Or(spec.Base, "scratch")},
	})
	if err != nil {
		return "", fmt.Errorf("docker: image build: %w", err)
	}
	defer resp.Body.Close()
	return readBuildStream(resp.Body, progress)
}

// readBuildStream prints the engine's build messages and returns the
// built image's id.
func readBuildStream(r io.Reader, w io.Writer) (string, error) {
	dec := json.NewDecoder(r)
	w = &indenter{w: w, start: true}
	var id string
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("docker: reading the build's progress: %w", err)
		}
		if m.Error != nil {
			return "", fmt.Errorf("docker: image build failed: %s", m.Error.Message)
		}
		if m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
		switch {
		case m.Stream != "":
			s := m.Stream
			if sid, ok := strings.CutPrefix(strings.TrimSpace(s), "Successfully built "); ok && id == "" {
				id = sid
			}
			io.WriteString(w, s)
		case m.Status != "":
			fmt.Fprintf(w, "%s\n", m.Status)
		}
	}
	if id == "" {
		return "", errors.New("docker: the engine reported no image id for the build")
	}
	return id, nil
}

// indenter indents every line written through it by two spaces.
type indenter struct {
	w     io.Writer
	start bool
}

func (in *indenter) Write(p []byte) (int, error) {
	var b []byte
	for _, c := range p {
		if in.start && c != '\n' {
			b = append(b, ' ', ' ')
		}
		b = append(b, c)
		in.start = c == '\n'
	}
	if _, err := in.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// scratchDockerfile is the recipe without a base; the context holds
// rootfs/ (owned by root), and workspace/ and data/ (owned by the
// runtime's user, so that new volumes mounted there start with the same
// owner).
const scratchDockerfile = `FROM scratch
COPY rootfs/ /
COPY --chown=%[1]d:%[2]d workspace/ %[6]s/
COPY --chown=%[1]d:%[2]d data/ %[7]s/
USER %[1]d:%[2]d
ENV PATH=%[3]s HOME=%[6]s TMPDIR=/tmp AGENTHOST_WORKSPACE=%[6]s AGENTHOST_DATA_DIR=%[7]s SSL_CERT_FILE=%[4]s
WORKDIR %[6]s
CMD %[5]s
`

// baseDockerfile is the recipe on a base image, which brings its own
// users, certificates and tools.
const baseDockerfile = `FROM %[8]s
COPY rootfs/ /
COPY --chown=%[1]d:%[2]d workspace/ %[6]s/
COPY --chown=%[1]d:%[2]d data/ %[7]s/
USER %[1]d:%[2]d
ENV PATH=%[3]s HOME=%[6]s TMPDIR=/tmp LANG=C.UTF-8 AGENTHOST_WORKSPACE=%[6]s AGENTHOST_DATA_DIR=%[7]s
WORKDIR %[6]s
CMD %[5]s
`

// buildContext returns the build context as an uncompressed tar.
func buildContext(spec ImageSpec) ([]byte, error) {
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("docker: image: reading the binary: %w", err)
	}
	var certs []byte
	if spec.Base == "" {
		if certs, err = os.ReadFile(spec.CACerts); err != nil {
			return nil, fmt.Errorf("docker: image: reading CA certificates (install ca-certificates, or pass another bundle): %w", err)
		}
	}
	cmd, err := json.Marshal(spec.Cmd)
	if err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nagenthost:x:%d:%d:agenthost:/workspace:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\nagenthost:x:%d:\nnogroup:x:65534:\n", GID)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	recipe, path := scratchDockerfile, BinDir
	if spec.Base != "" {
		recipe, path = baseDockerfile, ImagePath
	}
	steps := []func() error{
		func() error {
			return file("Dockerfile", 0o644, fmt.Appendf(nil, recipe, UID, GID, path, CACertsPath, cmd, Workspace, DataDir, spec.Base))
		},
		func() error { return dir("rootfs", 0o755) },
	}
	if spec.Base == "" {
		steps = append(steps,
			func() error { return dir("rootfs/etc", 0o755) },
			func() error { return file("rootfs/etc/passwd", 0o644, []byte(passwd)) },
			func() error { return file("rootfs/etc/group", 0o644, []byte(group)) },
			func() error { return dir("rootfs/etc/ssl", 0o755) },
			func() error { return dir("rootfs/etc/ssl/certs", 0o755) },
			func() error { return file("rootfs"+CACertsPath, 0o644, certs) },
			func() error { return dir("rootfs/tmp", 0o1777) },
		)
	}
	steps = append(steps,
		func() error { return dir("rootfs/usr", 0o755) },
		func() error { return dir("rootfs/usr/local", 0o755) },
		func() error { return dir("rootfs"+BinDir, 0o755) },
		func() error { return file("rootfs"+BinDir+"/"+spec.BinaryName, 0o755, bin) },
		// COPY of a directory copies its content: a file keeps each
		// from being an empty (and root-owned) directory.
		func() error { return dir("workspace", 0o755) },
		func() error { return file("workspace/.agenthost-workspace", 0o644, nil) },
		func() error { return dir("data", 0o700) },
		func() error { return file("data/.agenthost-data", 0o600, nil) },
	)
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CheckStatic reports whether path is a statically linked Linux ELF
// executable: what a FROM scratch image can run, and what runs on any
// base whatever its C library.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("docker: image: %s is not a Linux executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("docker: image: %s is dynamically linked; the runtime image needs a static binary (build it with CGO_ENABLED=0)", path)
		}
	}
	return nil
}

// ELFArch returns the GOARCH of a Linux ELF executable ("amd64", "arm64"),
// or "" when it is another machine.
func ELFArch(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_AARCH64:
		return "arm64"
	}
	return ""
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
