package fstools_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agenthost/agenthost/agent/fstools"
)

// A tool confined to a fixed directory. A hosted agent passes
// host.UploadsDir instead, so each run reads its own caller's uploads.
func Example() {
	dir, _ := os.MkdirTemp("", "fstools")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("buy milk"), 0o600)

	readFile := fstools.Tools(fstools.Dir(dir))[0]
	out, _ := readFile.Call(context.Background(), []byte(`{"path": "notes.txt"}`))
	fmt.Println(out)
	_, err := readFile.Call(context.Background(), []byte(`{"path": "../etc/passwd"}`))
	fmt.Println(err != nil)
	// Output:
	// {"path":"notes.txt","size":8,"type":"text/plain; charset=utf-8","content":"buy milk"}
	// true
}
