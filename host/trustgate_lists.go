package host

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/agenthost/agenthost/trust/policy"
)

// listSource is a whitelist or blacklist: inline addresses plus an
// optional file, reread when it changes. Only the TrustGate's rebuild
// (under its lock) calls load.
type listSource struct {
	name   string
	inline []string
	file   string

	loaded  bool
	failing bool
	missing bool // the file did not exist at the last load
	mod     time.Time
	size    int64
	list    *policy.List
}

func newListSource(name string, l AccessList) *listSource {
	return &listSource{name: name, inline: slices.Clone(l.Addresses), file: l.File}
}

// load returns the list, whether it changed since the last load, and an
// error when it is unusable (a missing, unreadable or malformed file, or a
// bad inline entry). The first failure is logged, naming the file and the
// line, never the contents; the caller fails closed.
func (s *listSource) load(log *slog.Logger) (changed bool, l *policy.List, err error) {
	if s.file == "" {
		if s.loaded {
			return false, s.list, nil
		}
		if s.list, err = policy.NewList(s.name, s.inline); err != nil {
			return false, nil, s.fail(log, err)
		}
		s.loaded = true
		return true, s.list, nil
	}
	st, err := os.Stat(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		// A named file that is not there is an empty list (the inline
		// entries only), said once; it is read when it appears.
		if s.loaded && s.missing {
			return false, s.list, nil
		}
		log.Warn("trust: access list file does not exist; the list is empty until it is created", "list", s.name, "path", s.file)
		if s.list, err = policy.NewList(s.name, s.inline); err != nil {
			return false, nil, s.fail(log, err)
		}
		s.loaded, s.missing, s.failing = true, true, false
		return true, s.list, nil
	}
	if err == nil && s.loaded && !s.failing && !s.missing && st.ModTime().Equal(s.mod) && st.Size() == s.size {
		return false, s.list, nil
	}
	var text []byte
	if err == nil {
		text, err = os.ReadFile(s.file)
	}
	if err == nil {
		_, err = policy.ParseList(s.file, bytes.NewReader(text))
	}
	var list *policy.List
	if err == nil {
		entries := slices.Clone(s.inline)
		for _, line := range strings.Split(string(text), "\n") {
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			entries = append(entries, line)
		}
		list, err = policy.NewList(s.name, entries)
	}
	if err != nil {
		return false, nil, s.fail(log, err)
	}
	if s.failing {
		log.Info("trust: access list usable again", "list", s.name, "path", s.file, "entries", list.Len())
	}
	s.loaded, s.failing, s.missing, s.mod, s.size, s.list = true, false, false, st.ModTime(), st.Size(), list
	return true, list, nil
}

func (s *listSource) fail(log *slog.Logger, err error) error {
	if !s.failing {
		log.Error("trust: access list unusable; refusing every request until it is fixed", "list", s.name, "path", s.file, "err", err)
	}
	s.failing = true
	return fmt.Errorf("%s: %w", s.name, err)
}

// adminTrust is POST /admin/trust: a signed admin operation (promote,
// demote, block, unblock) from the host's own identity; see
// policy.SignAdmin and docs/trust.md.
func (s *Server) adminTrust(w http.ResponseWriter, r *http.Request) error {
	g, ok := s.current().gate.(*TrustGate)
	if !ok {
		return errorf(http.StatusNotFound, "admin operations need the default trust gate")
	}
	body, err := readBody(w, r, 64<<10)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf(http.StatusBadRequest, "request body is empty; send a signed admin operation")
	}
	op, level, err := g.Admin(r.Context(), body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"admin": op.Action, "address": op.Address, "level": level})
	return nil
}
