package cli

// The agenthost binary runs any model its users name, so it links every
// provider; Go programs that import agent link only the ones they import.
import (
	_ "github.com/agenthost/agenthost/llm/anthropic"
	_ "github.com/agenthost/agenthost/llm/openai"
)
