package cli

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/runtime/docker"
	"github.com/agenthost/agenthost/internal/version"
)

func init() {
	var tag, binary, source, caCerts string
	register(&Command{
		Name:  "image",
		Usage: "build [--tag NAME] [--binary PATH] [--source DIR] [--ca-certs FILE]",
		Short: "build the runtime image for `agenthost platform --driver docker`",
		Long: `Builds the image each agent's container runs, locally, with no registry:
FROM scratch plus a static agenthost binary (/usr/local/bin/agenthost), the
host's CA certificates, /etc/passwd with the non-root user agenthost
(10001), /tmp and /workspace. The engine is the one docker uses (DOCKER_HOST
or the local socket).

The binary is --binary when given; else this agenthost when it is a static
Linux binary of the engine's architecture; else one built from source with
CGO_ENABLED=0 go build ./cmd/agenthost (run from the source tree, or pass
--source).

Then run: agenthost platform --driver docker [--image NAME]
See docs/docker.md.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tag, "tag", docker.DefaultImage, "image name")
			fs.StringVar(&binary, "binary", "", "static agenthost binary to install (default: this one, or built from source)")
			fs.StringVar(&source, "source", "", "agenthost source tree to build from (default: the working directory)")
			fs.StringVar(&caCerts, "ca-certs", docker.CACertsPath, "CA bundle to install")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) != 1 || args[0] != "build" {
				return Usagef("want: agenthost image build [flags]")
			}
			if source == "" {
				source = env.Dir
			} else if !filepath.IsAbs(source) {
				source = filepath.Join(env.Dir, source)
			}
			if binary != "" && !filepath.IsAbs(binary) {
				binary = filepath.Join(env.Dir, binary)
			}
			return imageBuild(ctx, env, tag, binary, source, caCerts)
		},
	})
}

func imageBuild(ctx context.Context, env *Env, tag, binary, source, caCerts string) error {
	begin := time.Now()
	w := env.Stdout
	c, err := docker.NewClient()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := docker.Ping(ctx, c); err != nil {
		return err
	}
	v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return fmt.Errorf("docker: engine version: %w", err)
	}
	fmt.Fprintf(w, "engine: Docker %s (API %s, %s/%s) at %s\n", v.Version, c.ClientVersion(), v.Os, v.Arch, c.DaemonHost())
	if v.Os != "linux" {
		return fmt.Errorf("the engine runs %s containers; the runtime image is linux only", v.Os)
	}
	bin, cleanup, err := docker.StaticBinary(ctx, docker.BinaryOptions{
		Binary: binary, Arch: v.Arch, Source: source, Progress: w,
		Ldflags: "-s -w -X github.com/agenthost/agenthost/internal/version.Version=" + version.String(),
	})
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Fprintf(w, "image: building %s\n", tag)
	id, err := docker.BuildImage(ctx, c, docker.ImageSpec{Tag: tag, Binary: bin, CACerts: caCerts, Progress: w})
	if err != nil {
		return err
	}
	size := ""
	if in, err := c.ImageInspect(ctx, id); err == nil && in.Size > 0 {
		size = fmt.Sprintf(", %.1f MB", float64(in.Size)/(1<<20))
	}
	fmt.Fprintf(w, "\nBuilt %s (%s%s) in %s.\nRun agents in it:\n  agenthost platform --driver docker --image %s\n",
		tag, shortImageID(id), size, time.Since(begin).Round(100*time.Millisecond), tag)
	return nil
}

func shortImageID(id string) string {
	if len(id) > 19 {
		return id[:19]
	}
	return id
}
