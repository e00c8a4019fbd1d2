package platform_test

import (
	"os"
	"testing"

	"github.com/agenthost/agenthost/internal/platform/isolationtest"
)

// TestIsolation runs the adversarial suite against the platform's default
// runtime driver (process) with the real coding runtime.
func TestIsolation(t *testing.T) {
	r := newCodingRig(t, false, nil)
	isolationtest.Run(t, isolationtest.Target{
		URL:         r.env.URL,
		Token:       r.env.Token,
		DataDir:     r.opts.DataDir,
		PlatformPID: os.Getpid(),
		DiskLimit:   64 << 20,
		Netns:       os.Geteuid() == 0,
	})
}
