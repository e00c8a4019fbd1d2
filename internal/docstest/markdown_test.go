package docstest

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		page    string
		want    []Block
		wantErr string
	}{{
		name: "run, continuation, blank lines, other languages ignored",
		page: "<!-- walkthrough: run -->\n```sh\nagenthost keys\n\ncurl -X POST x \\\n  -d '{}'\n```\n```go\nx\n```\n",
		want: []Block{{Line: 2, Marked: true, Run: true, Commands: []string{"agenthost keys", "curl -X POST x \\\n  -d '{}'"}}},
	}, {
		name: "a quote left open joins lines; quotes in comments and # inside words do not count",
		page: "<!-- walkthrough: run -->\n```sh\ncurl -d '{\n  \"a\": 1\n}'\nls # the agent's\ncurl x/a.md#it\"\n\"\necho done\n```\n",
		want: []Block{{Line: 2, Marked: true, Run: true, Commands: []string{"curl -d '{\n  \"a\": 1\n}'", "ls # the agent's", "curl x/a.md#it\"\n\"", "echo done"}}},
	}, {
		name: "a block in a list item is indented",
		page: "- item\n\n  <!-- walkthrough: run -->\n  ```sh\n  curl -d '{\n    \"a\": 1}'\n  ```\n",
		want: []Block{{Line: 4, Marked: true, Run: true, Commands: []string{"curl -d '{\n  \"a\": 1}'"}}},
	}, {
		name: "a here-document is part of its command",
		page: "<!-- walkthrough: run -->\n```sh\ncat > f <<'EOF'\na: \"it's\"\n\nEOF\nls\n```\n",
		want: []Block{{Line: 2, Marked: true, Run: true, Commands: []string{"cat > f <<'EOF'\na: \"it's\"\n\nEOF", "ls"}}},
	}, {
		name: "skip a command, expect, start; a reason may hold ; and quotes may hold ( and ;",
		page: `<!-- walkthrough: start "agenthost serve"; run; skip "agenthost bench" (slow; minutes); expect "call (x;" "5" -->` + "\n```sh\nagenthost bench\n```\n",
		want: []Block{{Line: 2, Marked: true, Run: true, Commands: []string{"agenthost bench"},
			Starts: []string{"agenthost serve"}, Skips: map[string]string{"agenthost bench": "slow; minutes"},
			Expects: map[string][]string{"call (x;": {"5"}}}},
	}, {
		name: "single quotes hold double quotes",
		page: `<!-- walkthrough: run; expect 'x "a;b"' '"created":true' -->` + "\n```sh\nls\n```\n",
		want: []Block{{Line: 2, Marked: true, Run: true, Commands: []string{"ls"},
			Expects: map[string][]string{`x "a;b"`: {`"created":true`}}}},
	}, {
		name: "skip the block",
		page: "<!-- walkthrough: skip (Docker) -->\n```sh\ndocker ps\n```\n",
		want: []Block{{Line: 2, Marked: true, Reason: "Docker", Commands: []string{"docker ps"}}},
	}, {
		name: "a marker not just above the block does not count",
		page: "<!-- walkthrough: run -->\ntext\n```sh\nls\n```\n",
		want: []Block{{Line: 3, Commands: []string{"ls"}}},
	}, {
		name:    "run and skip at once",
		page:    "<!-- walkthrough: run; skip (no) -->\n```sh\nls\n```\n",
		wantErr: "either run or skip",
	}, {
		name:    "unknown directive",
		page:    "<!-- walkthrough: runn -->\n```sh\nls\n```\n",
		wantErr: `cannot read "runn"`,
	}, {
		name:    "unclosed block",
		page:    "```sh\nls\n",
		wantErr: "never closed",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("p.md", tt.page)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.want {
				tt.want[i].Page = "p.md"
				if tt.want[i].Skips == nil {
					tt.want[i].Skips = map[string]string{}
				}
				if tt.want[i].Expects == nil {
					tt.want[i].Expects = map[string][]string{}
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestServer(t *testing.T) {
	tests := []struct {
		cmd  string
		port int
		ok   bool
	}{
		{"agenthost serve", 8000, true},
		{"agenthost serve --port 9000 --reload   # comment --port 1", 9000, true},
		{"AGENTHOST_PORT=20001 A=b \\\nagenthost serve --role coding", 20001, true},
		{"agenthost relay                       # :8765", 8765, true},
		{"agenthost platform --port 8080", 8080, true},
		{"agenthost platform", 8080, true},
		{"agenthost platform token create --org acme", 0, false},
		{"agenthost image build && agenthost platform --driver docker", 0, false},
		{"agenthost call http://localhost:8000 hi", 0, false},
		{"curl localhost:8000", 0, false},
	}
	for _, tt := range tests {
		port, ok := server(tt.cmd)
		if port != tt.port || ok != tt.ok {
			t.Errorf("server(%q) = %d, %v; want %d, %v", tt.cmd, port, ok, tt.port, tt.ok)
		}
	}
}

func TestSplitComment(t *testing.T) {
	tests := []struct{ line, code, comment string }{
		{"agenthost keys   # the address", "agenthost keys   ", "# the address"},
		{`curl -d '{"a": "#x"}' # c`, `curl -d '{"a": "#x"}' `, "# c"},
		{"echo a#b", "echo a#b", ""},
	}
	for _, tt := range tests {
		code, comment := splitComment(tt.line)
		if code != tt.code || comment != tt.comment {
			t.Errorf("splitComment(%q) = %q, %q", tt.line, code, comment)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("<!-- walkthrough: run; skip \"a\" (b); expect \"c\" \"d\" -->\n```sh\nls \\\n -l\n```\n")
	f.Add("<!-- walkthrough: skip (x;y) -->\n```sh\n```\n")
	f.Fuzz(func(t *testing.T, page string) {
		blocks, err := Parse("p.md", page)
		if err != nil {
			return
		}
		for _, b := range blocks {
			if b.Marked && b.Run == (b.Reason != "") {
				t.Fatalf("a marked block both run and skipped, or neither: %#v", b)
			}
			for _, c := range b.Commands {
				if strings.TrimSpace(c) == "" {
					t.Fatalf("blank command in %#v", b)
				}
			}
		}
	})
}
