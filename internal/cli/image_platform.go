package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	units "github.com/docker/go-units"

	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/runtime/docker"
)

// dockerCommand is the runtime's argv inside the image (on its PATH).
const dockerCommand = "agenthost serve --role coding"

// dockerFlags declares the Docker driver's flags of `agenthost platform`.
func dockerFlags(fs *flag.FlagSet, o *platformFlags) {
	fs.StringVar(&o.image, "image", docker.DefaultImage, "runtime image (--driver docker; build it with `agenthost image build`)")
	fs.StringVar(&o.memory, "runtime-memory", "1g", "memory limit of each runtime (--driver docker)")
	fs.Float64Var(&o.cpus, "runtime-cpus", 1, "CPU limit of each runtime (--driver docker)")
	fs.Int64Var(&o.pids, "runtime-pids", 512, "process limit of each runtime (--driver docker)")
}

// newDockerDriver makes the Docker driver from the platform's flags and
// checks that the engine answers and has the image.
func newDockerDriver(o *platformFlags, log *slog.Logger) (runtime.Driver, io.Closer, error) {
	mem, err := units.RAMInBytes(o.memory)
	if err != nil || mem <= 0 {
		return nil, nil, Usagef("--runtime-memory %q: want a size such as 512m or 2g", o.memory)
	}
	if o.cpus <= 0 || o.pids <= 0 {
		return nil, nil, Usagef("--runtime-cpus and --runtime-pids must be positive")
	}
	if o.command == "" {
		o.command = dockerCommand
	}
	d, err := docker.New(docker.Options{
		Image:     o.image,
		Resources: docker.Resources{MemoryBytes: mem, NanoCPUs: int64(o.cpus * 1e9), PidsLimit: o.pids},
		Scope:     dockerScope(o),
		Logger:    log,
	})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Ping(ctx); err != nil {
		d.Close()
		return nil, nil, err
	}
	if _, err := d.Client().ImageInspect(ctx, o.image); err != nil {
		d.Close()
		return nil, nil, fmt.Errorf("runtime image %s: %w (build it with: agenthost image build --tag %s)", o.image, err, o.image)
	}
	return d, d, nil
}

// dockerScope names this platform's runtimes among those on the engine:
// one store (a database, or a data directory) is one scope, so replicas
// sharing PostgreSQL share it and two platforms with their own SQLite do
// not take each other's containers for orphans.
func dockerScope(o *platformFlags) string {
	key := "sqlite:" + o.data
	if o.database != "" {
		key = "postgres:" + o.database
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}
