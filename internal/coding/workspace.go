package coding

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrOutsideWorkspace is wrapped by every error that refuses a path because
// it leaves the workspace, so callers can tell a policy refusal from an I/O
// failure.
var ErrOutsideWorkspace = errors.New("path is outside the workspace")

// Workspace confines file access to one directory tree. Paths from the
// model are resolved lexically, then through the symlinks that already
// exist, and the result must stay under the root; the file operations
// themselves go through os.Root, so a symlink swapped in between the check
// and the use still cannot escape.
type Workspace struct {
	root    string // absolute, as given (cleaned)
	real    string // root with its own symlinks resolved
	disk    *diskGuard
	private string // Options.Private, "" for none
}

// otherSession returns the session whose private subdirectory holds rel
// (a resolved path), when that is not ctx's session; "" otherwise.
func (w *Workspace) otherSession(ctx context.Context, rel string) string {
	if w.private == "" {
		return ""
	}
	rest, ok := strings.CutPrefix(rel, w.private+"/")
	if !ok {
		return ""
	}
	owner, _, _ := strings.Cut(rest, "/")
	if owner == "" || owner == SessionFrom(ctx) {
		return ""
	}
	return owner
}

// hidden reports whether a walk from base (a resolved path) leaves p out:
// another session's private subdirectory, unless the walk started in it
// (which took the organization's approval).
func (w *Workspace) hidden(ctx context.Context, base, p string) bool {
	return w.otherSession(ctx, p) != "" && w.otherSession(ctx, base) == ""
}

// OpenWorkspace checks that root is a directory and remembers both its
// absolute and its symlink-free form, so absolute paths from the model are
// accepted in either spelling.
func OpenWorkspace(root string) (*Workspace, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", root, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("workspace %s: not a directory", root)
	}
	return &Workspace{root: abs, real: real}, nil
}

// Root returns the workspace directory, absolute.
func (w *Workspace) Root() string { return w.root }

// Resolve maps a path from the model (relative to the workspace, or
// absolute inside it, also spelled under WorkspacePath, where the model
// sees it) to a slash-separated path relative to the workspace
// with every existing symlink resolved; "." is the root itself. Paths that
// leave the workspace lexically or through a symlink are refused with an
// error wrapping ErrOutsideWorkspace. The path need not exist, so Resolve
// also vets files about to be created.
func (w *Workspace) Resolve(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("path %q contains a NUL byte", p)
	}
	if p == "" {
		p = "."
	}
	var abs string
	if filepath.IsAbs(p) {
		abs = filepath.Clean(p)
		if _, ok := within(w.root, abs); !ok {
			if rel, ok := within(WorkspacePath, abs); ok {
				abs = filepath.Join(w.root, rel)
			}
		}
	} else {
		abs = filepath.Join(w.root, p)
	}
	// Accept absolute paths under either spelling of the root.
	base := w.root
	rel, ok := within(w.root, abs)
	if !ok {
		base = w.real
		if rel, ok = within(w.real, abs); !ok {
			return "", fmt.Errorf("%s: %w %s", p, ErrOutsideWorkspace, w.root)
		}
	}
	// Resolve symlinks in the longest prefix that exists; the rest does
	// not exist yet and so holds no links.
	existing, rest := rel, ""
	for {
		if _, err := os.Lstat(filepath.Join(base, existing)); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		if existing == "." {
			break
		}
		dir, file := filepath.Split(existing)
		rest = filepath.Join(file, rest)
		existing = filepath.Clean(dir)
		if dir == "" {
			existing = "."
		}
	}
	real, err := filepath.EvalSymlinks(filepath.Join(base, existing))
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	final := filepath.Join(real, rest)
	out, ok := within(w.real, final)
	if !ok {
		return "", fmt.Errorf("%s: a symlink leads to %s: %w %s", p, final, ErrOutsideWorkspace, w.root)
	}
	return filepath.ToSlash(out), nil
}

// within reports whether target lies under dir, returning the relative
// path ("." for dir itself).
func within(dir, target string) (string, bool) {
	rel, err := filepath.Rel(dir, target)
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return "", false
	}
	return rel, true
}

// open returns an os.Root for one operation. Opening per call keeps no
// descriptor alive between tool calls, so tools need no Close.
func (w *Workspace) open() (*os.Root, error) {
	r, err := os.OpenRoot(w.real)
	if err != nil {
		return nil, fmt.Errorf("opening workspace: %w", err)
	}
	return r, nil
}

// display turns a resolved path back into the form shown to the model.
func display(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
