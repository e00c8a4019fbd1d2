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

// baseScratch, as --base, builds the runtime image FROM scratch.
const baseScratch = "scratch"

func init() {
	var tag, binary, source, caCerts, base string
	var rebuild bool
	register(&Command{
		Name:  "image",
		Usage: "build [--tag NAME] [--base IMAGE] [--binary PATH] [--source DIR] | base [--rebuild]",
		Words: []string{"build", "base"},
		Short: "build the runtime image for `agenthost platform --driver docker`",
		Long: `image build makes the image each agent's container runs, locally, with no
registry: a base image with the tools an agent's commands need, plus a static
agenthost binary (/usr/local/bin/agenthost), the non-root user agenthost
(10001) and its directories /workspace and /var/lib/agenthost.

The base is, by default, a Debian root filesystem (bash, coreutils, git, curl,
python3, node and npm, bubblewrap, ...) that mmdebstrap builds from Debian's
packages on this machine and imports into the engine, as agenthost-base:KEY.
The first build takes a few minutes and prints its progress; the image is
reused while its recipe (KEY, also its label agenthost.base) is unchanged.
It needs mmdebstrap (apt-get install mmdebstrap) and root, or user
namespaces. With a registry, name your own base instead: --base IMAGE (it
needs bash and the tools your agents use, and bubblewrap for the sandbox).
--base scratch makes an image without any tools (the agent's bash fails).

image base only makes (or finds) the Debian base, and prints its name;
--rebuild makes it again even when one is cached (new package updates).

The binary is --binary when given; else this agenthost when it is a static
Linux binary of the engine's architecture; else one built from source with
CGO_ENABLED=0 go build ./cmd/agenthost (run from the source tree, or pass
--source).

The engine is the one docker uses (DOCKER_HOST or the local socket).
Then run: agenthost platform --driver docker [--image NAME]
See docs/docker.md.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tag, "tag", docker.DefaultImage, "image name (build)")
			fs.StringVar(&base, "base", "", "base image to build on (build; default: the Debian base, made when missing; scratch: none)")
			fs.StringVar(&binary, "binary", "", "static agenthost binary to install (build; default: this one, or built from source)")
			fs.StringVar(&source, "source", "", "agenthost source tree to build from (build; default: the working directory)")
			fs.StringVar(&caCerts, "ca-certs", docker.CACertsPath, "CA bundle to install (build --base scratch only)")
			fs.BoolVar(&rebuild, "rebuild", false, "make the Debian base again even when cached (base)")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) != 1 || (args[0] != "build" && args[0] != "base") {
				return Usagef("want: agenthost image build [flags], or agenthost image base [--rebuild]")
			}
			if args[0] == "base" {
				return imageBase(ctx, env, rebuild)
			}
			if source == "" {
				source = env.Dir
			} else if !filepath.IsAbs(source) {
				source = filepath.Join(env.Dir, source)
			}
			if binary != "" && !filepath.IsAbs(binary) {
				binary = filepath.Join(env.Dir, binary)
			}
			return imageBuild(ctx, env, imageOptions{tag: tag, base: base, binary: binary, source: source, caCerts: caCerts})
		},
	})
}

type imageOptions struct {
	tag, base, binary, source, caCerts string
}

// engineClient connects to the engine and checks it runs Linux
// containers; it returns the engine's architecture.
func engineClient(ctx context.Context, env *Env) (*client.Client, string, error) {
	c, err := docker.NewClient()
	if err != nil {
		return nil, "", err
	}
	if err := docker.Ping(ctx, c); err != nil {
		c.Close()
		return nil, "", err
	}
	v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		c.Close()
		return nil, "", fmt.Errorf("docker: engine version: %w", err)
	}
	fmt.Fprintf(env.Stdout, "engine: Docker %s (API %s, %s/%s) at %s\n", v.Version, c.ClientVersion(), v.Os, v.Arch, c.DaemonHost())
	if v.Os != "linux" {
		c.Close()
		return nil, "", fmt.Errorf("the engine runs %s containers; the runtime image is linux only", v.Os)
	}
	return c, v.Arch, nil
}

func imageBase(ctx context.Context, env *Env, rebuild bool) error {
	c, arch, err := engineClient(ctx, env)
	if err != nil {
		return err
	}
	defer c.Close()
	spec := docker.BaseSpec{Arch: arch, Progress: env.Stdout}
	if rebuild {
		_, err = docker.BuildBase(ctx, c, spec)
	} else {
		_, _, err = docker.EnsureBase(ctx, c, spec)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Base image: %s\n", spec.Tag())
	return nil
}

func imageBuild(ctx context.Context, env *Env, o imageOptions) error {
	begin := time.Now()
	w := env.Stdout
	c, arch, err := engineClient(ctx, env)
	if err != nil {
		return err
	}
	defer c.Close()
	base := o.base
	switch base {
	case "":
		if base, _, err = docker.EnsureBase(ctx, c, docker.BaseSpec{Arch: arch, Progress: w}); err != nil {
			return err
		}
	case baseScratch:
		base = ""
		fmt.Fprintln(w, "base: none (FROM scratch): the image has no shell, and an agent's bash tool fails in it")
	default:
		if _, err := c.ImageInspect(ctx, base); err != nil {
			return fmt.Errorf("base image %s: %w (it is never pulled: pull or load it first)", base, err)
		}
		fmt.Fprintf(w, "base: %s (given)\n", base)
	}
	bin, cleanup, err := docker.StaticBinary(ctx, docker.BinaryOptions{
		Binary: o.binary, Arch: arch, Source: o.source, Progress: w,
		Ldflags: "-s -w -X github.com/agenthost/agenthost/internal/version.Version=" + version.String(),
	})
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Fprintf(w, "image: building %s\n", o.tag)
	id, err := docker.BuildImage(ctx, c, docker.ImageSpec{Tag: o.tag, Base: base, Binary: bin, CACerts: o.caCerts, Progress: w})
	if err != nil {
		return err
	}
	size := ""
	if in, err := c.ImageInspect(ctx, id); err == nil && in.Size > 0 {
		size = fmt.Sprintf(", %.1f MB", float64(in.Size)/(1<<20))
	}
	fmt.Fprintf(w, "\nBuilt %s (%s%s) in %s.\nRun agents in it:\n  agenthost platform --driver docker --image %s\n",
		o.tag, shortImageID(id), size, time.Since(begin).Round(100*time.Millisecond), o.tag)
	return nil
}

func shortImageID(id string) string {
	if len(id) > 19 {
		return id[:19]
	}
	return id
}
