package coderuntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/ids"
)

// Upload limits of seed 003.
const (
	MaxUploadFile  = 50 << 20  // bytes per file
	MaxUploadTotal = 100 << 20 // bytes in uploads/ in total
)

// UploadExtensions are the file types seed 003 allows.
var UploadExtensions = []string{
	".txt", ".md", ".pdf", ".csv", ".json", ".xml", ".yaml", ".yml", ".toml",
	".py", ".js", ".ts", ".jsx", ".tsx", ".html", ".css", ".scss", ".sql", ".rs", ".go", ".java", ".c", ".cpp", ".h",
	".rb", ".php", ".swift", ".kt",
	".png", ".jpg", ".jpeg", ".gif", ".webp",
}

func allowedExt(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	for _, e := range UploadExtensions {
		if e == ext {
			return true
		}
	}
	return false
}

// SanitizeName reduces an uploaded file's name to a safe base name: the
// last path element, letters, digits, '.', '-' and '_' only, no leading
// dots, at most 200 bytes. It returns "" when nothing is left.
func SanitizeName(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	var b strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.TrimLeft(b.String(), ".")
	if len(out) > 200 {
		ext := path.Ext(out)
		if len(ext) > 20 {
			ext = ""
		}
		out = out[:200-len(ext)] + ext
	}
	if strings.Trim(out, "_") == "" || strings.Trim(out, "_") == path.Ext(out) {
		return ""
	}
	return out
}

// SessionUploads is where a session page's uploads go: a folder per
// session, uploads/sessions/<sessionId>/, which only that session's tools
// reach freely (another session's need the organization's approval, and
// its sandbox does not show the folder at all).
const SessionUploads = "uploads/sessions"

// postFile stores the multipart "file" part in the workspace's uploads/,
// or with ?sessionId= in that session's own folder, or with
// ?newSessionId= in the folder of a session about to be started by
// POST /control/messages with the same newSessionId.
func (rt *Runtime) postFile(w http.ResponseWriter, r *http.Request) error {
	dir := "uploads"
	q := r.URL.Query()
	sid, fresh := q.Get("sessionId"), q.Get("newSessionId")
	switch {
	case sid != "" && fresh != "":
		return httpjson.Errorf(http.StatusBadRequest, "name sessionId or newSessionId, not both")
	case sid != "":
		if _, err := rt.eng.Session(r.Context(), sid); err != nil {
			return err
		}
		dir = path.Join(SessionUploads, sid)
	case fresh != "":
		if err := rt.freshSession(r.Context(), fresh); err != nil {
			return err
		}
		dir = path.Join(SessionUploads, fresh)
	}
	r.Body = http.MaxBytesReader(w, r.Body, rt.cfg.MaxUploadFile+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		return httpjson.Errorf(http.StatusBadRequest, "missing file: send multipart/form-data with a \"file\" part")
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return httpjson.Errorf(http.StatusBadRequest, "missing file: no \"file\" part")
		}
		if err != nil {
			return rt.tooBigOr(err, httpjson.Errorf(http.StatusBadRequest, "malformed multipart body"))
		}
		if part.FormName() != "file" {
			part.Close()
			continue
		}
		res, err := rt.saveUpload(dir, part)
		part.Close()
		if err != nil {
			return err
		}
		httpjson.Write(w, http.StatusOK, res)
		return nil
	}
}

// newSessionID is the shape of the session ids the runtime makes
// (ids.Hex("ses_")); a caller-picked id must have it, so it is a safe
// folder name and cannot be confused with anything else.
var newSessionID = regexp.MustCompile(`^ses_[0-9a-f]{24}$`)

// freshSession checks that id may name a new session: the right shape
// and no session has it.
func (rt *Runtime) freshSession(ctx context.Context, id string) error {
	if !newSessionID.MatchString(id) {
		return httpjson.Errorf(http.StatusBadRequest, "newSessionId must be \"ses_\" and 24 lowercase hex digits")
	}
	_, err := rt.eng.Session(ctx, id)
	switch {
	case err == nil:
		return httpjson.Errorf(http.StatusConflict, "a session %s exists; name it as sessionId", id)
	case errors.Is(err, ErrNotFound):
		return nil
	}
	return err
}

func (rt *Runtime) tooBigOr(err error, other error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return httpjson.Errorf(http.StatusBadRequest, "file exceeds %s", mb(rt.cfg.MaxUploadFile))
	}
	return other
}

// uploadDir makes dir (slash-separated, in the workspace) as needed and
// opens it; every directory on the way must be a plain directory, not a
// symlink, so nothing lands outside it.
func (rt *Runtime) uploadDir(dir string) (*os.Root, error) {
	at := rt.ws
	for _, name := range strings.Split(dir, "/") {
		at = filepath.Join(at, name)
		fi, err := os.Lstat(at)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(at, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, err
			}
		case err != nil:
			return nil, err
		case !fi.IsDir():
			return nil, httpjson.Errorf(http.StatusBadRequest, "the workspace's %s is not a directory", dir)
		}
	}
	if fi, err := os.Lstat(at); err != nil || !fi.IsDir() {
		return nil, httpjson.Errorf(http.StatusBadRequest, "the workspace's %s is not a directory", dir)
	}
	return os.OpenRoot(at)
}

// uploadsSize is the bytes of the regular files under uploads/, every
// session's folder included, leaving out skip (a file about to be
// replaced).
func (rt *Runtime) uploadsSize(skip string) int64 {
	var used int64
	base := filepath.Join(rt.ws, "uploads")
	_ = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || p == skip {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			used += fi.Size()
		}
		return nil
	})
	return used
}

// saveUpload writes part to a temporary file in dir and renames it into
// place, within the seed's limits. Uploads are serialised so the total
// stays right.
func (rt *Runtime) saveUpload(dir string, part *multipart.Part) (FileResult, error) {
	name := SanitizeName(part.FileName())
	if name == "" {
		return FileResult{}, httpjson.Errorf(http.StatusBadRequest, "missing file: the file has no usable name")
	}
	if !allowedExt(name) {
		return FileResult{}, httpjson.Errorf(http.StatusBadRequest, "file type %q is not allowed", strings.ToLower(path.Ext(name)))
	}
	rt.uploadMu.Lock()
	defer rt.uploadMu.Unlock()
	root, err := rt.uploadDir(dir)
	if err != nil {
		return FileResult{}, err
	}
	defer root.Close()
	host := filepath.Join(rt.ws, filepath.FromSlash(dir))
	used := rt.uploadsSize(filepath.Join(host, name))
	tmp := fmt.Sprintf(".upload-%s.tmp", ids.Hex(""))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return FileResult{}, err
	}
	n, err := io.Copy(f, io.LimitReader(part, rt.cfg.MaxUploadFile+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	fail := func(e error) (FileResult, error) {
		root.Remove(tmp)
		return FileResult{}, e
	}
	switch {
	case err != nil:
		return fail(rt.tooBigOr(err, fmt.Errorf("writing the upload: %w", err)))
	case n > rt.cfg.MaxUploadFile:
		return fail(httpjson.Errorf(http.StatusBadRequest, "file exceeds %s", mb(rt.cfg.MaxUploadFile)))
	case used+n > rt.cfg.MaxUploadTotal:
		return fail(httpjson.Errorf(http.StatusBadRequest, "agent total exceeds %s (%d bytes already uploaded)", mb(rt.cfg.MaxUploadTotal), used))
	}
	if err := root.Rename(tmp, name); err != nil {
		return fail(fmt.Errorf("storing the upload: %w", err))
	}
	return FileResult{Path: filepath.Join(host, name), Name: name, Size: n}, nil
}

// mb writes a limit the way the seed does ("50MB").
func mb(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%dMB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
