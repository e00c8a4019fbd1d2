package api

import (
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"

	"github.com/agenthost/agenthost/internal/httpjson"
)

// The agent's workspace, read-only, for an organization's token (the agent
// page): GET /api/v1/agents/{agentId}/files?path=DIR lists a directory,
// GET /api/v1/agents/{agentId}/files/content?path=FILE downloads a file.
// Both are the runtime's /control/files routes; a download is streamed and
// always sent as an attachment of type application/octet-stream, never as
// something a browser would render on the platform's origin.

func (s *Server) workspaceRoutes() {
	tok := s.viaToken
	s.Handle("GET /api/v1/agents/{agentId}/files", tok(s.listFiles))
	s.Handle("GET /api/v1/agents/{agentId}/files/content", tok(s.fileContent))
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request, t target) error {
	v, st, err := s.callJSON(r.Context(), t.agent, controlCall{method: http.MethodGet, path: "/files", query: url.Values{"path": {r.URL.Query().Get("path")}}})
	if err != nil {
		return err
	}
	m := object(v)
	if m == nil {
		return badAnswer(t, "/files")
	}
	m["agentId"] = t.agent.ID
	httpjson.Write(w, st, m)
	return nil
}

func (s *Server) fileContent(w http.ResponseWriter, r *http.Request, t target) error {
	p := r.URL.Query().Get("path")
	resp, done, err := s.callRuntime(r.Context(), t.agent, controlCall{method: http.MethodGet, path: "/files/content", query: url.Values{"path": {p}}})
	if err != nil {
		return err
	}
	defer done()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return runtimeError(t.agent.ID, "/files/content", resp.StatusCode, b)
	}
	size := int64(-1)
	if n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		size = n
	}
	modified, _ := http.ParseTime(resp.Header.Get("Last-Modified"))
	// The headers are the platform's own, whatever the runtime sent.
	httpjson.DownloadHeaders(w.Header(), path.Base(p), size, modified)
	w.WriteHeader(http.StatusOK)
	if size >= 0 {
		_, err = io.CopyN(w, resp.Body, size)
	} else {
		_, err = io.Copy(w, resp.Body)
	}
	if err != nil {
		s.log.Warn("sending a workspace file", "agent", t.agent.ID, "err", err)
	}
	return nil
}
