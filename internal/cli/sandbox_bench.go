package cli

// The sandbox's scenario (sandbox/bash) registers with `agenthost bench`.
import _ "github.com/agenthost/agenthost/internal/sandbox/sandboxbench"
