package coding

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/agenthost/agenthost/agent"
)

const (
	readDefaultLines = 2000
	readMaxLineBytes = 2000
	readLimitBytes   = 50 << 10
	listMaxEntries   = 1000
	sniffBytes       = 8 << 10
)

// readArgs are the arguments of the read tool.
type readArgs struct {
	Path   string `json:"path" jsonschema:"the file to read, relative to the workspace"`
	Offset int    `json:"offset,omitempty" jsonschema:"the first line to show, counting from 1"`
	Limit  int    `json:"limit,omitempty" jsonschema:"how many lines to show (default 2000)"`
}

func readTool(w *Workspace, _ Options) agent.Tool {
	return newTool("read", "Read a text file of the workspace. Lines are numbered from 1 (number, tab, text); use offset and limit to page through large files.",
		func(ctx context.Context, a readArgs) (string, error) { return w.read(a) },
		func(ctx context.Context, a readArgs) (Request, error) {
			return pathRequest(ctx, w, "read", a.Path)
		})
}

// pathRequest is the request of a tool that acts on one path. A path in
// another session's private folder always asks, and says that only the
// organization may approve it.
func pathRequest(ctx context.Context, w *Workspace, permission, p string) (Request, error) {
	rel, err := w.Resolve(p)
	if err != nil {
		return Request{}, err
	}
	req := Request{Permission: permission, Patterns: []string{rel}, Metadata: map[string]any{"filepath": rel}}
	if other := w.otherSession(ctx, rel); other != "" {
		req.MustAsk = true
		req.Metadata["organization"] = true
		req.Metadata["session"] = other
		req.Metadata["description"] = "another session's private files (its uploads): only the organization can approve this"
	}
	return req, nil
}

func (w *Workspace) read(a readArgs) (string, error) {
	if a.Offset < 0 || a.Limit < 0 {
		return "", errors.New("offset and limit must not be negative")
	}
	if a.Offset == 0 {
		a.Offset = 1
	}
	if a.Limit == 0 {
		a.Limit = readDefaultLines
	}
	rel, err := w.Resolve(a.Path)
	if err != nil {
		return "", err
	}
	root, err := w.open()
	if err != nil {
		return "", err
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return "", notFoundHint(root, rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read %s: %w", rel, err)
	}
	if fi.IsDir() {
		return "", fmt.Errorf("%s is a directory; use the list tool to see its contents", rel)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(sniffBytes)
	if isBinary(head) {
		return fmt.Sprintf("%s is a binary file (%s, %d bytes); it is not shown.", rel, http.DetectContentType(head), fi.Size()), nil
	}
	if fi.Size() == 0 {
		return fmt.Sprintf("(%s is empty)", rel), nil
	}
	var out strings.Builder
	line, shown := 0, 0
	truncated := false
	for {
		text, err := readLine(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", rel, err)
		}
		line++
		if line < a.Offset {
			continue
		}
		if shown == a.Limit || out.Len() >= readLimitBytes {
			truncated = true
			break
		}
		if len(text) > readMaxLineBytes {
			text = cutUTF8(text, readMaxLineBytes) + " [line truncated]"
		}
		fmt.Fprintf(&out, "%6d\t%s\n", line, text)
		shown++
	}
	switch {
	case shown == 0:
		return fmt.Sprintf("(%s has %d lines; offset %d is past the end)", rel, line, a.Offset), nil
	case truncated:
		fmt.Fprintf(&out, "\n(showing lines %d-%d; continue with offset=%d)", a.Offset, a.Offset+shown-1, a.Offset+shown)
	}
	return out.String(), nil
}

// readLine returns the next line without its line ending. Lines of any
// length are read, so long minified files do not break the scan.
func readLine(br *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			if err == io.EOF && buf != nil {
				return string(buf), nil
			}
			return "", err
		}
		if len(buf) < readMaxLineBytes+4 {
			buf = append(buf, chunk...)
		}
		if !isPrefix {
			return string(bytes.TrimSuffix(buf, []byte("\r"))), nil
		}
	}
}

// isBinary guesses from a file's first bytes: a NUL byte, or text that is
// not UTF-8, means a binary file.
func isBinary(head []byte) bool {
	if bytes.IndexByte(head, 0) >= 0 {
		return true
	}
	// The sniffed prefix may end inside a multibyte rune.
	for i := 0; i < utf8.UTFMax && len(head) > 0 && !utf8.Valid(head); i++ {
		head = head[:len(head)-1]
	}
	return !utf8.Valid(head)
}

// cutUTF8 cuts s to at most n bytes without splitting a rune.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// notFoundHint adds similarly named files to a "not found" error, since
// the model often gets a name or extension slightly wrong.
func notFoundHint(root *os.Root, rel string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open %s: %w", rel, err)
	}
	dir, base := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	entries, derr := fs.ReadDir(root.FS(), path.Clean(dir))
	var similar []string
	if derr == nil {
		stem := strings.ToLower(strings.TrimSuffix(base, path.Ext(base)))
		for _, e := range entries {
			n := strings.ToLower(e.Name())
			if stem != "" && (strings.Contains(n, stem) || strings.Contains(stem, strings.TrimSuffix(n, path.Ext(n)))) {
				similar = append(similar, path.Join(dir, e.Name()))
			}
			if len(similar) == 5 {
				break
			}
		}
	}
	if len(similar) > 0 {
		return fmt.Errorf("file not found: %s (did you mean %s?): %w", rel, strings.Join(similar, ", "), fs.ErrNotExist)
	}
	return fmt.Errorf("file not found: %s: %w", rel, fs.ErrNotExist)
}

// writeArgs are the arguments of the write tool.
type writeArgs struct {
	Path    string `json:"path" jsonschema:"the file to write, relative to the workspace"`
	Content string `json:"content" jsonschema:"the complete new content of the file"`
}

func writeTool(w *Workspace) agent.Tool {
	return newTool("write", "Create a file or replace its whole content. Parent directories are created. Prefer edit for changes to existing files.",
		func(ctx context.Context, a writeArgs) (string, error) { return w.write(a) },
		func(ctx context.Context, a writeArgs) (Request, error) {
			req, err := pathRequest(ctx, w, "write", a.Path)
			if err != nil {
				return req, err
			}
			old, exists, err := w.currentContent(req.Patterns[0])
			req.Metadata["exists"] = exists
			req.Metadata["diff"] = previewDiff(req.Patterns[0], old, a.Content, err)
			return req, nil
		})
}

// previewLimit bounds the files read to build a diff preview for approval.
const previewLimit = 1 << 20

// errTooLarge marks a file too big for a diff preview.
var errTooLarge = errors.New("file too large for a preview")

// currentContent returns a file's text for a preview: whether it exists,
// and errTooLarge instead of the text of a big file.
func (w *Workspace) currentContent(rel string) (string, bool, error) {
	root, err := w.open()
	if err != nil {
		return "", false, err
	}
	defer root.Close()
	fi, err := root.Stat(rel)
	if err != nil {
		return "", false, nil
	}
	if fi.Size() > previewLimit {
		return "", true, errTooLarge
	}
	b, err := root.ReadFile(rel)
	if err != nil {
		return "", true, err
	}
	return string(b), true, nil
}

// previewDiff is the diff shown to the person approving a change.
func previewDiff(rel, old, new string, err error) string {
	if err != nil {
		return fmt.Sprintf("(no preview: %v)", err)
	}
	return unifiedDiff(rel, old, new)
}

func (w *Workspace) write(a writeArgs) (string, error) {
	if err := w.disk.refuse(); err != nil {
		return "", err
	}
	rel, err := w.Resolve(a.Path)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "", errors.New("write needs a file path, not the workspace itself")
	}
	root, err := w.open()
	if err != nil {
		return "", err
	}
	defer root.Close()
	if dir := path.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("write %s: creating %s: %w", rel, dir, err)
		}
	}
	verb, mode := "Created", fs.FileMode(0o644)
	if fi, err := root.Stat(rel); err == nil {
		if fi.IsDir() {
			return "", fmt.Errorf("%s is a directory", rel)
		}
		verb, mode = "Overwrote", fi.Mode().Perm()
	}
	if err := root.WriteFile(rel, []byte(a.Content), mode); err != nil {
		return "", fmt.Errorf("write %s: %w", rel, err)
	}
	return fmt.Sprintf("%s %s (%d bytes).", verb, rel, len(a.Content)), nil
}

// editArgs are the arguments of the edit tool.
type editArgs struct {
	Path       string `json:"path" jsonschema:"the file to edit, relative to the workspace"`
	OldString  string `json:"old_string" jsonschema:"the exact text to replace, including whitespace; it must occur exactly once unless replace_all is set. Empty creates a new file."`
	NewString  string `json:"new_string" jsonschema:"the text to put in its place"`
	ReplaceAll bool   `json:"replace_all,omitempty" jsonschema:"replace every occurrence of old_string"`
}

func editTool(w *Workspace) agent.Tool {
	return newTool("edit", "Replace an exact string in a file. old_string must match the file exactly (read the file first) and be unique unless replace_all is set; an empty old_string creates a new file with new_string.",
		func(ctx context.Context, a editArgs) (string, error) { return w.edit(a) },
		func(ctx context.Context, a editArgs) (Request, error) {
			req, err := pathRequest(ctx, w, "edit", a.Path)
			if err != nil {
				return req, err
			}
			old, exists, err := w.currentContent(req.Patterns[0])
			updated := ""
			if err == nil {
				if updated, _, err = applyEdit(old, exists, a); err != nil {
					return req, err // the edit will fail without changing anything
				}
			}
			req.Metadata["diff"] = previewDiff(req.Patterns[0], old, updated, err)
			req.Metadata["replaceAll"] = a.ReplaceAll
			return req, nil
		})
}

// applyEdit computes the edited content and the number of replacements.
func applyEdit(content string, exists bool, a editArgs) (string, int, error) {
	if a.OldString == "" {
		if exists && content != "" {
			return "", 0, errors.New("old_string is empty but the file already has content; give the text to replace, or use write to replace the whole file")
		}
		return a.NewString, 1, nil
	}
	if !exists {
		return "", 0, fmt.Errorf("file not found: %s: %w", a.Path, fs.ErrNotExist)
	}
	if a.OldString == a.NewString {
		return "", 0, errors.New("old_string and new_string are identical; nothing to change")
	}
	old, repl := a.OldString, a.NewString
	n := strings.Count(content, old)
	if n == 0 && strings.Contains(content, "\r\n") && !strings.Contains(old, "\r\n") {
		// The model writes \n; the file uses \r\n.
		old, repl = strings.ReplaceAll(old, "\n", "\r\n"), strings.ReplaceAll(repl, "\n", "\r\n")
		n = strings.Count(content, old)
	}
	switch {
	case n == 0:
		return "", 0, errors.New("old_string was not found in the file; read the file and copy the text exactly, including indentation")
	case n > 1 && !a.ReplaceAll:
		return "", 0, fmt.Errorf("old_string occurs %d times; include more surrounding text to make it unique, or set replace_all", n)
	case a.ReplaceAll:
		return strings.ReplaceAll(content, old, repl), n, nil
	}
	return strings.Replace(content, old, repl, 1), 1, nil
}

func (w *Workspace) edit(a editArgs) (string, error) {
	if err := w.disk.refuse(); err != nil {
		return "", err
	}
	rel, err := w.Resolve(a.Path)
	if err != nil {
		return "", err
	}
	root, err := w.open()
	if err != nil {
		return "", err
	}
	defer root.Close()
	mode := fs.FileMode(0o644)
	b, err := root.ReadFile(rel)
	exists := err == nil
	switch {
	case exists:
		if fi, err := root.Stat(rel); err == nil {
			mode = fi.Mode().Perm()
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return "", fmt.Errorf("edit %s: %w", rel, err)
	}
	updated, n, err := applyEdit(string(b), exists, a)
	if err != nil {
		return "", fmt.Errorf("edit %s: %w", rel, err)
	}
	if !exists {
		if dir := path.Dir(rel); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return "", fmt.Errorf("edit %s: creating %s: %w", rel, dir, err)
			}
		}
	}
	if err := root.WriteFile(rel, []byte(updated), mode); err != nil {
		return "", fmt.Errorf("edit %s: %w", rel, err)
	}
	if !exists {
		return fmt.Sprintf("Created %s (%d bytes).", rel, len(updated)), nil
	}
	return fmt.Sprintf("Edited %s: %d replacement(s).", rel, n), nil
}

// listArgs are the arguments of the list tool.
type listArgs struct {
	Path  string `json:"path,omitempty" jsonschema:"the directory to list, relative to the workspace (default: the workspace)"`
	Depth int    `json:"depth,omitempty" jsonschema:"how many levels to show (default 1, at most 5)"`
}

// skipDirs are listed but never descended into by list, glob and grep.
var skipDirs = map[string]bool{".git": true, "node_modules": true, ".hg": true, ".svn": true}

func listTool(w *Workspace, _ Options) agent.Tool {
	return newTool("list", "List a directory of the workspace. Directories end with /; use depth to see more levels.",
		func(ctx context.Context, a listArgs) (string, error) { return w.list(ctx, a) },
		func(ctx context.Context, a listArgs) (Request, error) { return pathRequest(ctx, w, "list", a.Path) })
}

func (w *Workspace) list(ctx context.Context, a listArgs) (string, error) {
	depth := min(max(a.Depth, 1), 5)
	rel, err := w.Resolve(a.Path)
	if err != nil {
		return "", err
	}
	root, err := w.open()
	if err != nil {
		return "", err
	}
	defer root.Close()
	fsys := root.FS()
	var out strings.Builder
	n := 0
	var walk func(dir string, level int) error
	walk = func(dir string, level int) error {
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return err
		}
		slices.SortFunc(entries, func(x, y fs.DirEntry) int {
			if x.IsDir() != y.IsDir() {
				if x.IsDir() {
					return -1
				}
				return 1
			}
			return strings.Compare(x.Name(), y.Name())
		})
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if n == listMaxEntries {
				return errStop
			}
			if e.IsDir() && w.hidden(ctx, rel, path.Join(dir, e.Name())) {
				continue
			}
			n++
			name := e.Name()
			if e.IsDir() {
				name += "/"
			} else if e.Type()&fs.ModeSymlink != 0 {
				name += "@"
			}
			fmt.Fprintf(&out, "%s%s\n", strings.Repeat("  ", level), name)
			if e.IsDir() && level+1 < depth && !skipDirs[e.Name()] {
				if err := walk(path.Join(dir, e.Name()), level+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	switch err := walk(rel, 0); {
	case errors.Is(err, errStop):
		fmt.Fprintf(&out, "[listing truncated at %d entries; list a subdirectory or use glob]\n", listMaxEntries)
	case err != nil:
		return "", fmt.Errorf("list %s: %w", rel, err)
	}
	if n == 0 {
		return fmt.Sprintf("(%s is empty)", rel), nil
	}
	return fmt.Sprintf("%s/\n%s", strings.TrimSuffix(rel, "/"), out.String()), nil
}

// errStop ends a walk early once a result bound is reached.
var errStop = errors.New("stop")
