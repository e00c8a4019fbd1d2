package platform_test

import (
	"os"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/agents"
	"github.com/agenthost/agenthost/internal/platform/isolationtest"
	"github.com/agenthost/agenthost/internal/platform/platformtest"
	"github.com/agenthost/agenthost/internal/runtime"
)

// TestAdversarial runs the adversarial isolation suite against the
// platform's default runtime driver (process) with the real coding
// runtime, its limits set low enough for the attacks to hit them.
func TestAdversarial(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the real runtime")
	}
	const disk = 64 << 20
	r := newRigWith(t, false, agents.Config{
		Command:   []string{platformtest.Agenthost(t), "serve", "--role", "coding"},
		Resources: runtime.Resources{MemoryBytes: 512 << 20, PidsLimit: 256},
		DiskBytes: disk,
	}, nil)
	isolationtest.Run(t, isolationtest.Target{
		URL:         r.env.URL,
		Token:       r.env.Token,
		DataDir:     r.opts.DataDir,
		PlatformPID: os.Getpid(),
		DiskLimit:   disk,
		Netns:       os.Geteuid() == 0,
	})
}
