package fstools_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/agent/fstools"
)

func tool(t *testing.T, tools []agent.Tool, name string) agent.Tool {
	t.Helper()
	for _, tl := range tools {
		if tl.Spec().Name == name {
			return tl
		}
	}
	t.Fatalf("no tool %s", name)
	return nil
}

func read(t *testing.T, tl agent.Tool, args string) (*fstools.ReadResult, error) {
	t.Helper()
	out, err := tl.Call(context.Background(), json.RawMessage(args))
	if err != nil {
		return nil, err
	}
	var r fstools.ReadResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("answer %q: %v", out, err)
	}
	return &r, nil
}

func TestReadFileConfined(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "uploads")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello uploads"), 0o600)
	os.WriteFile(filepath.Join(base, "secret.txt"), []byte("host secret"), 0o600)
	os.WriteFile(filepath.Join(dir, "blob.bin"), []byte{0x89, 'P', 'N', 'G', 0, 0, 1, 2}, 0o600)
	if err := os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	rd := tool(t, fstools.Tools(fstools.Dir(dir)), "read_file")

	tests := []struct {
		name, path string
		want       string // content; "" with wantErr
		outside    bool   // refused as ErrOutside
		wantErr    bool
	}{
		{name: "relative", path: "notes.txt", want: "hello uploads"},
		{name: "absolute inside", path: filepath.Join(dir, "notes.txt"), want: "hello uploads"},
		{name: "dot-dot", path: "../secret.txt", outside: true, wantErr: true},
		{name: "absolute outside", path: filepath.Join(base, "secret.txt"), outside: true, wantErr: true},
		{name: "absolute dot-dot", path: dir + "/../secret.txt", outside: true, wantErr: true},
		{name: "etc passwd", path: "/etc/passwd", outside: true, wantErr: true},
		{name: "symlink out", path: "link.txt", wantErr: true},
		{name: "missing", path: "nope.txt", wantErr: true},
		{name: "directory", path: ".", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args, _ := json.Marshal(fstools.ReadArgs{Path: tc.path})
			r, err := read(t, rd, string(args))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("read %s: %+v, want an error", tc.path, r)
				}
				if tc.outside && !errors.Is(err, fstools.ErrOutside) {
					t.Fatalf("read %s: %v, want ErrOutside", tc.path, err)
				}
				if strings.Contains(err.Error(), "host secret") {
					t.Fatalf("error leaks the file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Content != tc.want || r.Size != int64(len(tc.want)) || r.Next != 0 {
				t.Fatalf("got %+v, want content %q", r, tc.want)
			}
		})
	}

	r, err := read(t, rd, `{"path":"blob.bin"}`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Content != "" || r.Note == "" || r.Size != 8 {
		t.Fatalf("binary file: %+v", r)
	}
}

func TestReadFilePages(t *testing.T) {
	dir := t.TempDir()
	text := strings.Repeat("héllo wörld ", 100)
	os.WriteFile(filepath.Join(dir, "big.txt"), []byte(text), 0o600)
	rd := tool(t, fstools.Tools(fstools.Dir(dir), fstools.WithMaxBytes(100)), "read_file")
	var got strings.Builder
	var off int64
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("read_file never reached the end")
		}
		args, _ := json.Marshal(fstools.ReadArgs{Path: "big.txt", Offset: off})
		r, err := read(t, rd, string(args))
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsRune(r.Content, '\uFFFD') {
			t.Fatalf("page at %d cuts a character: %q", off, r.Content)
		}
		got.WriteString(r.Content)
		if r.Next == 0 {
			break
		}
		off = r.Next
	}
	if got.String() != text {
		t.Fatalf("pages put together differ from the file")
	}
}

func TestListFiles(t *testing.T) {
	dir := t.TempDir()
	ls := tool(t, fstools.Tools(fstools.Dir(filepath.Join(dir, "none"))), "list_files")
	out, err := ls.Call(context.Background(), json.RawMessage(`{}`))
	if err != nil || out != "[]" {
		t.Fatalf("no uploads yet: %q, %v", out, err)
	}

	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("bb"), 0o600)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o600)
	ls = tool(t, fstools.Tools(fstools.Dir(dir)), "list_files")
	out, err = ls.Call(context.Background(), json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var es []fstools.Entry
	json.Unmarshal([]byte(out), &es)
	if len(es) != 2 || es[0].Path != filepath.Join(dir, "a.txt") || es[1].Size != 2 {
		t.Fatalf("list: %s", out)
	}
	if _, err := ls.Call(context.Background(), json.RawMessage(`{"path":"../.."}`)); !errors.Is(err, fstools.ErrOutside) {
		t.Fatalf("list ../..: %v, want ErrOutside", err)
	}
}

func TestRootError(t *testing.T) {
	no := errors.New("not in a hosted run")
	rd := tool(t, fstools.Tools(func(context.Context) (string, error) { return "", no }), "read_file")
	if _, err := rd.Call(context.Background(), json.RawMessage(`{"path":"x"}`)); !errors.Is(err, no) {
		t.Fatalf("got %v, want the Root's error", err)
	}
}

// FuzzConfined: whatever path the model names, read_file never returns a
// file outside its directory.
func FuzzConfined(f *testing.F) {
	for _, s := range []string{"notes.txt", "../secret.txt", "/etc/passwd", "./../secret.txt", "link.txt", "a/../../secret.txt", "//secret.txt"} {
		f.Add(s)
	}
	base := f.TempDir()
	dir := filepath.Join(base, "uploads")
	os.Mkdir(dir, 0o700)
	os.Mkdir(filepath.Join(dir, "a"), 0o700)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("inside"), 0o600)
	os.WriteFile(filepath.Join(base, "secret.txt"), []byte("OUTSIDE-SECRET"), 0o600)
	os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(dir, "link.txt"))
	os.Symlink(base, filepath.Join(dir, "a", "up"))
	rd := fstools.Tools(fstools.Dir(dir))[0]
	if rd.Spec().Name != "read_file" {
		f.Fatalf("first tool is %s", rd.Spec().Name)
	}
	f.Fuzz(func(t *testing.T, p string) {
		args, _ := json.Marshal(fstools.ReadArgs{Path: p})
		out, err := rd.Call(context.Background(), args)
		if strings.Contains(out, "OUTSIDE-SECRET") || (err != nil && strings.Contains(err.Error(), "OUTSIDE-SECRET")) {
			t.Fatalf("read_file %q reached outside: %q", p, out)
		}
	})
}
