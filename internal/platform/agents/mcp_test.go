package agents

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseMCPServers: whatever an API caller sends as mcpServers, the
// parser answers without panicking, refuses with an InvalidError naming
// mcpServers, or accepts servers that each validate and that survive a
// round trip through JSON unchanged in meaning.
func FuzzParseMCPServers(f *testing.F) {
	for _, s := range []string{
		`{"gh":{"type":"local","command":["gh-mcp","stdio"],"environment":{"T":"{env:GH_TOKEN}"}}}`,
		`{"s":{"type":"remote","url":"https://mcp.example/mcp","headers":{"Authorization":"Bearer {env:X}"},"timeout":5000}}`,
		`{"x":{"type":"local"}}`, `{"x":{"command":["a"]}}`, `[]`, `null`, `{"x":{"type":"local","command":["a"],"enabled":false}}`,
		`{"x":{"type":"remote","url":"ftp://x"}}`, `{"x":{"type":"local","command":["a"]}} trailing`, `{"x":{"type":"local","command":["a"],"environment":{"A":"{env:1bad}"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMCPServers(raw)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != "mcpServers" {
				t.Fatalf("error %v is not an InvalidError on mcpServers", err)
			}
			return
		}
		for name, c := range m {
			if err := c.Validate(name); err != nil {
				t.Fatalf("accepted an invalid server %q: %v", name, err)
			}
		}
		if m == nil {
			return
		}
		if compactJSON(raw) == nil {
			t.Fatalf("accepted %q, which is not one JSON value to store", raw)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseMCPServers(b); err != nil {
			t.Fatalf("re-encoded servers refused: %v (%s)", err, b)
		}
	})
}
