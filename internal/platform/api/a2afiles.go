package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/agenthost/agenthost/internal/a2amap"
	"github.com/agenthost/agenthost/internal/httpjson"
	"github.com/agenthost/agenthost/internal/platform/store"
)

// A2A file parts with bytes are uploads by another door: each is checked
// like POST /api/v1/agents/{agentId}/files (its name reduced to a base
// name with an allowed extension, the per-file limit, the agent's total)
// and saved by the runtime into the session's own upload folder, which the
// agent reaches and the agent's other sessions do not. The prompt then
// names each file's path in the workspace. Files by uri are refused, as
// the host refuses them (a2amap.Parse).

// sessionUploads is the runtime's folder of per-session uploads in the
// workspace (coderuntime.SessionUploads).
const sessionUploads = "uploads/sessions"

// a2aExtensions name files sent without a name, by their media type.
var a2aExtensions = map[string]string{
	"text/plain": ".txt", "text/markdown": ".md", "text/csv": ".csv", "application/json": ".json",
	"application/pdf": ".pdf", "application/xml": ".xml", "text/xml": ".xml", "text/html": ".html",
	"application/yaml": ".yaml", "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
}

// a2aFileName is the name a file part is saved under.
func a2aFileName(f a2amap.File) (string, error) {
	raw := f.Name
	if raw == "" {
		mt, _, _ := strings.Cut(f.MimeType, ";")
		ext, ok := a2aExtensions[strings.TrimSpace(strings.ToLower(mt))]
		if !ok {
			return "", httpjson.BadRequest("the file has no name and its mimeType %q names no allowed type: set file.name with one of the extensions %s", f.MimeType, strings.Join(AllowedExtensions, " "))
		}
		raw = "attachment" + ext
	}
	return uploadName(raw)
}

// saveFiles saves a message's files into session sid's upload folder, or,
// for a message that starts a session, into the folder of fresh, the id
// the session will have. Every file is checked before any is saved, and
// the agent's upload total is reserved for all of them at once; what is
// not saved is given back. It returns the notes that tell the agent where
// each file is.
func (p *platformTasks) saveFiles(ctx context.Context, sid, fresh string, files []a2amap.File) ([]string, error) {
	s, a := p.s, p.agent
	names := make([]string, len(files))
	var total int64
	for i, f := range files {
		name, err := a2aFileName(f)
		if err != nil {
			return nil, a2aFileError(i, err)
		}
		if int64(len(f.Data)) > s.cfg.MaxUploadFile {
			return nil, a2aFileError(i, httpjson.BadRequest("file %q is %d bytes: it exceeds %s (the limit per file)", name, len(f.Data), mb(s.cfg.MaxUploadFile)))
		}
		names[i] = name
		total += int64(len(f.Data))
	}
	if _, err := s.cfg.Store.AddUploadBytes(ctx, a.OrgID, a.ID, total, s.cfg.MaxUploadTotal); err != nil {
		if errors.Is(err, store.ErrLimit) {
			return nil, fmt.Errorf("%w: agent total exceeds %s: uploads to this agent are limited to %s in all", a2a.ErrInvalidParams, mb(s.cfg.MaxUploadTotal), mb(s.cfg.MaxUploadTotal))
		}
		return nil, platformA2AError(missing("agent", err))
	}
	folder, q := sid, url.Values{"sessionId": {sid}}
	if fresh != "" {
		folder, q = fresh, url.Values{"newSessionId": {fresh}}
	}
	var notes []string
	for i, f := range files {
		v, _, err := s.forwardFile(ctx, a, q, names[i], bytes.NewReader(f.Data))
		var saved string
		if err == nil {
			saved, err = savedIn(object(v), folder)
		}
		if err != nil {
			if _, rerr := s.cfg.Store.AddUploadBytes(ctx, a.OrgID, a.ID, -total, s.cfg.MaxUploadTotal); rerr != nil {
				s.log.Warn("giving back upload quota", "agent", a.ID, "err", rerr)
			}
			var he *httpjson.Error
			if errors.As(err, &he) && he.Status < 500 {
				return nil, a2aFileError(i, err)
			}
			return nil, platformA2AError(err)
		}
		total -= int64(len(f.Data))
		shown := f.Name
		if shown == "" {
			shown = path.Base(saved)
		}
		notes = append(notes, a2amap.FileNote(shown, int64(len(f.Data)), f.MimeType, saved))
	}
	return notes, nil
}

// savedIn checks that the runtime saved a file in the session's folder
// and returns its path in the workspace. A runtime that put it anywhere
// else (one too old to know ?newSessionId=) is an error: the file would be
// in every session's reach.
func savedIn(res map[string]any, folder string) (string, error) {
	name, _ := res["name"].(string)
	full, _ := res["path"].(string)
	want := path.Join(sessionUploads, folder, name)
	if name == "" || path.Base(name) != name || !strings.HasSuffix(full, "/"+want) {
		return "", fmt.Errorf("the runtime saved the file at %q, not in %s/: it is too old for A2A file parts; restart the agent on a current runtime", full, path.Join(sessionUploads, folder))
	}
	return want, nil
}

// a2aFileError is an A2A error about the message's i-th file.
func a2aFileError(i int, err error) error {
	var he *httpjson.Error
	if errors.As(err, &he) {
		return fmt.Errorf("%w: file %d: %s", a2a.ErrInvalidParams, i+1, he.Msg)
	}
	return fmt.Errorf("%w: file %d: %w", a2a.ErrInvalidParams, i+1, err)
}
