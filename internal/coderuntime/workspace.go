package coderuntime

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/agenthost/agenthost/internal/httpjson"
)

// The workspace's files, read-only, for the organization's agent page:
// GET /control/files?path=DIR lists a directory, GET
// /control/files/content?path=FILE sends a file's bytes. Everything is
// read through an os.Root on the workspace, so a symlink the agent made
// cannot lead outside it, and the runtime's own data directory is never
// shown when it lies inside the workspace.

// MaxListEntries bounds one directory listing; a larger directory's
// answer says "truncated".
const MaxListEntries = 5000

// FileEntry is one entry of a workspace directory.
type FileEntry struct {
	Name string `json:"name"`
	// Path is the entry's slash-separated path in the workspace.
	Path string `json:"path"`
	// Type is "dir", "file", "symlink" or "other" (a FIFO, a socket).
	Type string `json:"type"`
	// Size is a file's size in bytes (0 for the others).
	Size int64 `json:"size"`
	// Modified is the last change, Unix seconds as in the seed.
	Modified int64 `json:"modified"`
}

// FileList is the answer of GET /control/files.
type FileList struct {
	Path      string      `json:"path"`
	Entries   []FileEntry `json:"entries"`
	Truncated bool        `json:"truncated"`
}

// workspacePath checks a path of the query: slash-separated, relative to
// the workspace, without "." or ".." elements; "" is the workspace.
func (rt *Runtime) workspacePath(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" || p == "." {
		return ".", nil
	}
	if !fs.ValidPath(p) || strings.Contains(p, `\`) {
		return "", httpjson.BadRequest("path %q is not a path in the workspace: use a relative path with / between names, no . or ..", p)
	}
	if rt.hidden(p) {
		return "", httpjson.Errorf(http.StatusNotFound, "no such file or directory in the workspace: %s", p)
	}
	return p, nil
}

// hidden says whether p is the runtime's data directory, or inside it,
// when that directory lies inside the workspace.
func (rt *Runtime) hidden(p string) bool {
	rel, err := filepath.Rel(rt.ws, rt.cfg.DataDir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) {
		return false
	}
	rel = filepath.ToSlash(rel)
	return p == rel || strings.HasPrefix(p, rel+"/")
}

// open opens p in the workspace with flags. When the data directory lies
// inside the workspace, a file reached through symlinks into it is refused
// too: where the open file really is comes from /proc/self/fd.
func (rt *Runtime) open(root *os.Root, p string, flags int) (*os.File, error) {
	f, err := root.OpenFile(p, flags, 0)
	if err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(rt.ws, rt.cfg.DataDir); err == nil && !strings.HasPrefix(rel, "..") {
		real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
		data, derr := filepath.EvalSymlinks(rt.cfg.DataDir)
		if err != nil || derr != nil || real == data || strings.HasPrefix(real, data+string(filepath.Separator)) {
			f.Close()
			return nil, fs.ErrNotExist
		}
	}
	return f, nil
}

func (rt *Runtime) openRoot() (*os.Root, error) {
	root, err := os.OpenRoot(rt.ws)
	if err != nil {
		return nil, fmt.Errorf("opening the workspace: %w", err)
	}
	return root, nil
}

// fileError turns an error opening p into the caller's answer.
func fileError(p string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &httpjson.Error{Status: http.StatusNotFound, Msg: "no such file or directory in the workspace: " + p, Err: err}
	case errors.Is(err, fs.ErrPermission):
		return &httpjson.Error{Status: http.StatusForbidden, Msg: "the runtime may not read " + p, Err: err}
	}
	// os.Root refuses a path whose symlinks lead out of the workspace.
	return &httpjson.Error{Status: http.StatusBadRequest, Msg: "cannot open " + p + " in the workspace (a symlink leaving the workspace is not followed)", Err: err}
}

func (rt *Runtime) getFiles(w http.ResponseWriter, r *http.Request) error {
	p, err := rt.workspacePath(r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	root, err := rt.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	d, err := rt.open(root, p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_DIRECTORY)
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return httpjson.BadRequest("%s is not a directory: download it with /files/content", p)
		}
		return fileError(p, err)
	}
	defer d.Close()
	list := FileList{Path: strings.TrimPrefix(p, "."), Entries: []FileEntry{}}
	des, err := d.ReadDir(MaxListEntries + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fileError(p, err)
	}
	if len(des) > MaxListEntries {
		des, list.Truncated = des[:MaxListEntries], true
	}
	for _, de := range des {
		rel := path.Join(p, de.Name())
		if rt.hidden(rel) {
			continue
		}
		e := FileEntry{Name: de.Name(), Path: rel, Type: "other"}
		if fi, err := de.Info(); err == nil {
			e.Modified = fi.ModTime().Unix()
			switch m := fi.Mode(); {
			case m.IsDir():
				e.Type = "dir"
			case m.IsRegular():
				e.Type, e.Size = "file", fi.Size()
			case m&fs.ModeSymlink != 0:
				e.Type = "symlink"
			}
		}
		list.Entries = append(list.Entries, e)
	}
	slices.SortFunc(list.Entries, func(a, b FileEntry) int {
		if (a.Type == "dir") != (b.Type == "dir") {
			if a.Type == "dir" {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	httpjson.Write(w, http.StatusOK, list)
	return nil
}

// getFileContent sends one regular file as an attachment of type
// application/octet-stream, whatever its name says: a workspace file is
// the agent's output and never rendered by a browser. The file is opened
// without blocking (a FIFO the agent made cannot hang the request) and
// sent up to the size it had when opened.
func (rt *Runtime) getFileContent(w http.ResponseWriter, r *http.Request) error {
	p, err := rt.workspacePath(r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	if p == "." {
		return httpjson.BadRequest("path is required: the file to download")
	}
	root, err := rt.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := rt.open(root, p, os.O_RDONLY|syscall.O_NONBLOCK)
	if err != nil {
		return fileError(p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileError(p, err)
	}
	if fi.IsDir() {
		return httpjson.BadRequest("%s is a directory: list it with /files", p)
	}
	if !fi.Mode().IsRegular() {
		return httpjson.BadRequest("%s is not a regular file", p)
	}
	httpjson.DownloadHeaders(w.Header(), path.Base(p), fi.Size(), fi.ModTime())
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.CopyN(w, f, fi.Size())
	}
	return nil
}
