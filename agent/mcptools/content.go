package mcptools

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/agenthost/agenthost/agent"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// render turns a tool's result into the text the model reads: text as is,
// other content described in a line, structured content as JSON when there
// is nothing else; at most max bytes.
func render(res *mcp.CallToolResult, max int) string {
	var parts []string
	for _, c := range res.Content {
		switch v := c.(type) {
		case *mcp.TextContent:
			parts = append(parts, v.Text)
		case *mcp.ImageContent:
			parts = append(parts, fmt.Sprintf("[image: %s, %d bytes]", v.MIMEType, len(v.Data)))
		case *mcp.AudioContent:
			parts = append(parts, fmt.Sprintf("[audio: %s, %d bytes]", v.MIMEType, len(v.Data)))
		case *mcp.ResourceLink:
			parts = append(parts, fmt.Sprintf("[resource: %s %s]", v.URI, v.Name))
		case *mcp.EmbeddedResource:
			if r := v.Resource; r != nil && r.Text != "" {
				parts = append(parts, r.Text)
			} else if r != nil {
				parts = append(parts, fmt.Sprintf("[resource: %s, %s, %d bytes]", r.URI, r.MIMEType, len(r.Blob)))
			}
		default:
			if b, err := json.Marshal(c); err == nil {
				parts = append(parts, string(b))
			}
		}
	}
	if len(parts) == 0 && res.StructuredContent != nil {
		if b, err := json.Marshal(res.StructuredContent); err == nil {
			parts = append(parts, string(b))
		}
	}
	out := strings.Join(parts, "\n")
	if len(out) > max {
		cut := max
		for cut > 0 && !utf8Start(out[cut]) {
			cut--
		}
		out = fmt.Sprintf("%s\n[output cut: %d more bytes]", out[:cut], len(out)-cut)
	}
	return out
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// sanitize makes s usable in a tool name (^[A-Za-z0-9_-]+$).
func sanitize(s string) string {
	s = unsafeName.ReplaceAllString(s, "_")
	if s == "" {
		return "_"
	}
	return s
}

// toolName is the name the model sees: prefix ("server_") and the tool's
// own name, made safe and at most 64 characters.
func toolName(prefix, name string) string {
	return shortName(prefix + sanitize(name))
}

// shortName fits name into 64 characters: a longer one keeps its start
// and ends with a hash of the whole, so long names sharing a start stay
// distinct.
func shortName(name string) string {
	const maxLen = 64
	if len(name) <= maxLen {
		return name
	}
	h := fmt.Sprintf("%08x", fnv32(name))
	return name[:maxLen-len(h)-1] + "_" + h
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

var _ agent.Toolset = (*Server)(nil)
