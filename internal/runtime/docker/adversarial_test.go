package docker

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/isolationtest"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/runtime"
)

// TestAdversarialDocker runs the adversarial isolation suite against the
// platform with the Docker driver and the real coding runtime image: the
// same attacks from an agent's approved bash, the same expectations as
// with the process driver.
func TestAdversarialDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the static agenthost and its image")
	}
	c := engine(t)
	buildRuntimeImage(t, c)
	dir := t.TempDir()
	d := newDriver(t, c, dir, func(o *Options) { o.Image = e2eImage })
	const disk = 64 << 20
	env := platformtest.Start(t, platformtest.Options{
		Driver: d, DataDir: dir,
		Agents: agents.Config{
			Command: []string{"agenthost", "serve", "--role", "coding"},
			Ports:   agents.PortRange{Min: 37500, Max: 37999}, ProvisionTimeout: 60 * time.Second,
			Resources: runtime.Resources{MemoryBytes: 512 << 20, PidsLimit: 256},
			DiskBytes: disk,
		},
	})
	t.Cleanup(func() {
		hs, _ := d.List(context.Background())
		for _, h := range hs {
			d.Destroy(context.Background(), h)
		}
	})
	mountpoint := func(volume string) string {
		v, err := c.VolumeInspect(context.Background(), volume, client.VolumeInspectOptions{})
		if err != nil {
			t.Fatalf("volume %s: %v", volume, err)
		}
		return v.Volume.Mountpoint
	}
	isolationtest.Run(t, isolationtest.Target{
		URL:          env.URL,
		Token:        env.Token,
		DataDir:      dir,
		PlatformPID:  os.Getpid(),
		DiskLimit:    disk,
		Netns:        os.Geteuid() == 0,
		WorkspaceDir: func(id string) string { return mountpoint(VolumeName(id)) },
		DataDirOf:    func(id string) string { return mountpoint(DataVolumeName(id)) },
	})
}
