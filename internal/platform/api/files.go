package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/platform/store"
)

// Upload limits, as the seed states them.
const (
	MaxUploadFile  = 50 << 20  // bytes per file
	MaxUploadTotal = 100 << 20 // bytes per agent, all uploads together
)

// AllowedExtensions are the file types the seed accepts for upload.
var AllowedExtensions = []string{
	".txt", ".md", ".pdf", ".csv", ".json", ".xml", ".yaml", ".yml", ".toml",
	".py", ".js", ".ts", ".jsx", ".tsx", ".html", ".css", ".scss", ".sql", ".rs", ".go", ".java", ".c", ".cpp", ".h", ".rb", ".php", ".swift", ".kt",
	".png", ".jpg", ".jpeg", ".gif", ".webp",
}

// multipartSlack is what a multipart body may carry beyond the file: the
// boundaries, part headers and small fields.
const multipartSlack = 1 << 20

// upload checks a multipart upload at the platform (the file field, its
// type, 50 MB per file, 100 MB per agent) before the runtime sees a byte
// of it: the file is spooled to a temporary file, the agent's quota is
// reserved in the store (atomically, so concurrent uploads cannot overshoot
// it) and the file is sent on. A failed upload gives its bytes back.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, t target) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return httpjson.BadRequest("send multipart/form-data with the file in the field \"file\"")
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxUploadFile+multipartSlack)
	name, tmp, size, err := s.spool(multipart.NewReader(body, params["boundary"]))
	if tmp != nil {
		defer os.Remove(tmp.Name())
		defer tmp.Close()
	}
	if err != nil {
		return err
	}
	a := t.agent
	if _, err := s.cfg.Store.AddUploadBytes(r.Context(), a.OrgID, a.ID, size, s.cfg.MaxUploadTotal); err != nil {
		if errors.Is(err, store.ErrLimit) {
			return httpjson.BadRequest("agent total exceeds %s: uploads to this agent are limited to %s in all", mb(s.cfg.MaxUploadTotal), mb(s.cfg.MaxUploadTotal))
		}
		return missing("agent", err)
	}
	var q url.Values
	if t.session != "" {
		q = url.Values{"sessionId": {t.session}}
	}
	v, st, err := s.forwardFile(r.Context(), a, q, name, tmp)
	if err != nil {
		if _, rerr := s.cfg.Store.AddUploadBytes(r.Context(), a.OrgID, a.ID, -size, s.cfg.MaxUploadTotal); rerr != nil {
			s.log.Warn("giving back upload quota", "agent", a.ID, "err", rerr)
		}
		return err
	}
	httpjson.Write(w, st, v)
	return nil
}

// spool finds the "file" part, checks its name and copies it to a
// temporary file, enforcing the per-file limit.
func (s *Server) spool(mr *multipart.Reader) (name string, tmp *os.File, size int64, err error) {
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return "", nil, 0, httpjson.BadRequest("missing file: send it in the multipart field \"file\"")
		}
		if err != nil {
			return "", nil, 0, s.uploadReadError(err)
		}
		if p.FormName() != "file" {
			if _, err := io.Copy(io.Discard, p); err != nil {
				return "", nil, 0, s.uploadReadError(err)
			}
			continue
		}
		if name, err = uploadName(p.FileName()); err != nil {
			return "", nil, 0, err
		}
		tmp, err = os.CreateTemp(s.cfg.TempDir, "upload-*")
		if err != nil {
			return "", nil, 0, fmt.Errorf("spooling an upload: %w", err)
		}
		n, err := io.Copy(tmp, io.LimitReader(p, s.cfg.MaxUploadFile+1))
		if err != nil {
			return "", tmp, 0, s.uploadReadError(err)
		}
		if n > s.cfg.MaxUploadFile {
			return "", tmp, 0, s.tooLarge()
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return "", tmp, 0, err
		}
		return name, tmp, n, nil
	}
}

// uploadName is the base name of an uploaded file's name, which must have
// one of the allowed extensions: whatever path the sender gave is dropped.
func uploadName(raw string) (string, error) {
	name := path.Base(strings.ReplaceAll(raw, `\`, "/"))
	if name == "" || name == "." || name == "/" || strings.HasPrefix(name, ".") && path.Ext(name) == name {
		return "", httpjson.BadRequest("missing file: the \"file\" field has no file name")
	}
	ext := strings.ToLower(path.Ext(name))
	if !slices.Contains(AllowedExtensions, ext) {
		if ext == "" {
			ext = "(none)"
		}
		return "", httpjson.BadRequest("file type %s is not allowed; allowed: %s", ext, strings.Join(AllowedExtensions, " "))
	}
	return name, nil
}

func (s *Server) tooLarge() error {
	return httpjson.BadRequest("file exceeds %s (the limit per file)", mb(s.cfg.MaxUploadFile))
}

func (s *Server) uploadReadError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return s.tooLarge()
	}
	return &httpjson.Error{Status: http.StatusBadRequest, Msg: "reading the multipart body failed", Err: err}
}

// forwardFile sends the spooled file to the runtime as a one-field
// multipart body, streamed. A session page's upload (q's sessionId) goes
// to its session's own folder, out of the other sessions' reach.
func (s *Server) forwardFile(ctx context.Context, a store.Agent, q url.Values, name string, f io.Reader) (any, int, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", name)
		if err == nil {
			_, err = io.Copy(fw, f)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	return s.callJSON(ctx, a, controlCall{
		method: http.MethodPost, path: "/files", query: q, body: pr, contentType: mw.FormDataContentType(), timeout: 5 * time.Minute,
	})
}

func mb(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
