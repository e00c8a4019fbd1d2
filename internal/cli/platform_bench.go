package cli

// The platform's scenarios (platform/provision, platform/idle-rss,
// platform/messages) register with `agenthost bench`.
import _ "github.com/agenthost/agenthost/internal/platform/platformbench"
