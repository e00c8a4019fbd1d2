package testutil

// The MCP TypeScript SDK's answers, as the tests' node scripts print them
// (the SDK's own JSON), for the host's and the CLI's MCP tests to decode.

// MCPTool is one tool of a tools/list answer.
type MCPTool struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	InputSchema map[string]any `json:"inputSchema"`
}

// MCPCallResult is a tools/call answer.
type MCPCallResult struct {
	Content []struct {
		Text string `json:"text"`
	} `json:"content"`
	StructuredContent map[string]string `json:"structuredContent"`
	IsError           bool              `json:"isError"`
}

// MCPProgress is one progress notification.
type MCPProgress struct {
	Progress float64 `json:"progress"`
	Message  string  `json:"message"`
}
