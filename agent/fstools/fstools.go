// Package fstools gives an agent read-only file tools confined to one
// directory: read_file and list_files. The directory is chosen per call by a
// Root function, so that a hosted agent reads the files its current caller
// uploaded (host.UploadsDir) and no one else's.
//
// Confinement uses os.Root: a path that leaves the directory — "..", an
// absolute path elsewhere, or a symbolic link pointing out — is refused, so
// a prompt cannot turn read_file into a way to read the host's files.
package fstools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/agenthost/agenthost/agent"
)

// Root returns the directory a tool call may read. It is called on every
// call with the call's context; host.UploadsDir has this signature.
type Root func(ctx context.Context) (string, error)

// Dir is a Root that is always dir.
func Dir(dir string) Root {
	return func(context.Context) (string, error) { return dir, nil }
}

// DefaultMaxBytes is how much of a file read_file returns in one call when
// no WithMaxBytes option is given: enough for most documents, small enough
// that one file cannot fill the model's context.
const DefaultMaxBytes = 64 << 10

// maxEntries bounds list_files' answer.
const maxEntries = 500

// ErrOutside is returned for a path outside the tools' directory.
var ErrOutside = errors.New("the path is outside the directory these tools may read")

// Option configures Tools.
type Option func(*config)

type config struct {
	maxBytes int64
}

// WithMaxBytes bounds what read_file returns per call; the model pages
// through larger files with offset.
func WithMaxBytes(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxBytes = n
		}
	}
}

// ReadArgs are read_file's arguments.
type ReadArgs struct {
	Path   string `json:"path" jsonschema:"the file's path, as given in the note about the upload, or relative to the uploads directory"`
	Offset int64  `json:"offset,omitempty" jsonschema:"the byte to start reading at; 0 when empty"`
}

// ReadResult is read_file's answer.
type ReadResult struct {
	Path string `json:"path"`
	// Size is the file's whole size in bytes.
	Size int64 `json:"size"`
	// Type is the media type sniffed from the file's first bytes.
	Type string `json:"type"`
	// Content is the text read, from Offset; empty for a binary file.
	Content string `json:"content,omitempty"`
	// Next is the offset to continue from when the file was not read to
	// its end.
	Next int64 `json:"next,omitempty"`
	// Note says why there is no content, for a binary file.
	Note string `json:"note,omitempty"`
}

// ListArgs are list_files' arguments.
type ListArgs struct {
	Path string `json:"path,omitempty" jsonschema:"a subdirectory to list; the uploads directory when empty"`
}

// Entry is one file in list_files' answer.
type Entry struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	IsDir bool   `json:"dir,omitempty"`
}

// Tools returns read_file and list_files, confined to root's directory.
func Tools(root Root, opts ...Option) []agent.Tool {
	c := config{maxBytes: DefaultMaxBytes}
	for _, o := range opts {
		o(&c)
	}
	return []agent.Tool{
		agent.MustTool("read_file", "Read a file the user uploaded (text; large files in pages: continue with offset=next).",
			func(ctx context.Context, a ReadArgs) (*ReadResult, error) { return c.read(ctx, root, a) }),
		agent.MustTool("list_files", "List the files the user uploaded.",
			func(ctx context.Context, a ListArgs) ([]Entry, error) { return list(ctx, root, a) }),
	}
}

// open opens root's directory as an os.Root and turns p into a path
// relative to it.
func open(ctx context.Context, root Root, p string) (*os.Root, string, string, error) {
	dir, err := root(ctx)
	if err != nil {
		return nil, "", "", err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, "", "", err
	}
	rel := p
	if filepath.IsAbs(p) {
		if rel, err = filepath.Rel(dir, filepath.Clean(p)); err != nil {
			return nil, "", "", fmt.Errorf("%s: %w", p, ErrOutside)
		}
	}
	if rel == "" {
		rel = "."
	}
	if !filepath.IsLocal(rel) && rel != "." {
		return nil, "", "", fmt.Errorf("%s: %w", p, ErrOutside)
	}
	r, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", "", fmt.Errorf("no files have been uploaded: %w", err)
	}
	if err != nil {
		return nil, "", "", err
	}
	return r, rel, dir, nil
}

func (c config) read(ctx context.Context, root Root, a ReadArgs) (*ReadResult, error) {
	if a.Path == "" {
		return nil, errors.New("path is required")
	}
	if a.Offset < 0 {
		return nil, errors.New("offset must not be negative")
	}
	r, rel, _, err := open(ctx, root, a.Path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := r.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory; use list_files", a.Path)
	}
	out := &ReadResult{Path: a.Path, Size: st.Size()}
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	out.Type = http.DetectContentType(head[:n])
	if !isText(head[:n]) {
		out.Note = "binary file: its content is not shown"
		return out, nil
	}
	if a.Offset >= st.Size() {
		return out, nil
	}
	buf := make([]byte, c.maxBytes)
	n, err = f.ReadAt(buf, a.Offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	buf = buf[:n]
	// End on a whole UTF-8 character so the next page starts on one.
	for cut := len(buf); cut > 0 && a.Offset+int64(len(buf)) < st.Size(); cut-- {
		if utf8.Valid(buf[:cut]) {
			buf = buf[:cut]
			break
		}
	}
	out.Content = strings.ToValidUTF8(string(buf), "\uFFFD")
	if end := a.Offset + int64(len(buf)); end < st.Size() {
		out.Next = end
	}
	return out, nil
}

func list(ctx context.Context, root Root, a ListArgs) ([]Entry, error) {
	r, rel, dir, err := open(ctx, root, a.Path)
	if errors.Is(err, fs.ErrNotExist) && a.Path == "" {
		return []Entry{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	d, err := r.Open(rel)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	infos, err := d.Readdir(maxEntries)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	out := make([]Entry, 0, len(infos))
	for _, fi := range infos {
		out = append(out, Entry{Path: filepath.Join(dir, rel, fi.Name()), Size: fi.Size(), IsDir: fi.IsDir()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// isText reports whether head looks like text: valid UTF-8 (allowing a
// character cut at the end) with no NUL bytes.
func isText(head []byte) bool {
	if len(head) == 0 {
		return true
	}
	for _, b := range head {
		if b == 0 {
			return false
		}
	}
	for cut := len(head); cut > 0 && cut > len(head)-utf8.UTFMax; cut-- {
		if utf8.Valid(head[:cut]) {
			return true
		}
	}
	return false
}
