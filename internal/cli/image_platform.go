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

	"github.com/agenthost/agenthost/internal/runtime"
	"github.com/agenthost/agenthost/internal/runtime/docker"
)

// dockerCommand is the runtime's argv inside the image (on its PATH).
const dockerCommand = "agenthost serve --role coding"

// dockerFlags declares the Docker driver's flags of `agenthost platform`.
func dockerFlags(fs *flag.FlagSet, o *platformFlags) {
	fs.StringVar(&o.image, "image", docker.DefaultImage, "runtime image (--driver docker; build it with \"agenthost image build\")")
}

// newDockerDriver makes the Docker driver from the platform's flags and
// checks that the engine answers and has the image.
func newDockerDriver(o *platformFlags, res runtime.Resources, log *slog.Logger) (runtime.Driver, io.Closer, error) {
	if o.command == "" {
		o.command = dockerCommand
	}
	d, err := docker.New(docker.Options{
		Image:     o.image,
		Resources: docker.Resources{MemoryBytes: res.MemoryBytes, NanoCPUs: res.NanoCPUs, PidsLimit: res.PidsLimit, NofileLimit: res.NofileLimit},
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
