package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/agenthost/agenthost/trust"
)

// List is an access list (a whitelist or blacklist): addresses and
// wildcard patterns such as "0xabc*", compared case-insensitively. The zero
// List and a nil *List match nothing. A List is immutable and safe for
// concurrent use.
type List struct {
	name  string
	exact map[string]struct{}
	globs []string
}

// ErrBadListEntry is returned for a list entry that is neither an address
// nor a pattern.
var ErrBadListEntry = errors.New("not an address (0x and 64 hex digits) or an address pattern such as 0xab12*")

// NewList returns a list of entries (addresses or patterns with '*'). name
// identifies the list in errors and logs ("whitelist"). Blank entries are
// skipped; anything else that is not an address or a pattern is an error.
func NewList(name string, entries []string) (*List, error) {
	l := &List{name: name, exact: make(map[string]struct{})}
	for i, e := range entries {
		if err := l.add(e); err != nil {
			return nil, fmt.Errorf("%s entry %d: %w", name, i+1, err)
		}
	}
	return l, nil
}

// ParseList reads a list file's text: one address or pattern per line, '#'
// starting a comment (whole-line or trailing), blank lines ignored. A bad
// line is an error naming its line number, not its content.
func ParseList(name string, r io.Reader) (*List, error) {
	l := &List{name: name, exact: make(map[string]struct{})}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if err := l.add(line); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return l, nil
}

// LoadList reads the list file at path. An unreadable or malformed file is
// an error, and is logged with slog as such (never with the file's
// contents): the caller must fail closed and deny.
func LoadList(path string) (*List, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		var l *List
		l, err = ParseList(path, bytes.NewReader(b))
		if err == nil {
			return l, nil
		}
	}
	slog.Error("trust: access list unusable; denying until it is fixed", "path", path, "err", err)
	return nil, fmt.Errorf("access list: %w", err)
}

// add adds one entry; blank entries are ignored.
func (l *List) add(entry string) error {
	e := strings.ToLower(strings.TrimSpace(entry))
	if e == "" {
		return nil
	}
	if !strings.Contains(e, "*") {
		addr, err := trust.NormalizeAddress(e)
		if err != nil {
			return ErrBadListEntry
		}
		l.exact[addr] = struct{}{}
		return nil
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == 'x' || c == '*') {
			return ErrBadListEntry
		}
	}
	l.globs = append(l.globs, e)
	return nil
}

// Match reports whether addr is on the list.
func (l *List) Match(addr string) bool {
	if l == nil || addr == "" {
		return false
	}
	a := strings.ToLower(addr)
	if _, ok := l.exact[a]; ok {
		return true
	}
	for _, g := range l.globs {
		if matchGlob(g, a) {
			return true
		}
	}
	return false
}

// Len returns the number of entries.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.exact) + len(l.globs)
}

// Name returns the name the list was created with.
func (l *List) Name() string {
	if l == nil {
		return ""
	}
	return l.name
}

// String describes the list without its contents.
func (l *List) String() string {
	return fmt.Sprintf("%s (%d entries)", l.Name(), l.Len())
}

// matchGlob matches s against pattern, where '*' matches any run of
// characters (including none) and every other byte matches itself.
func matchGlob(pattern, s string) bool {
	// Iterative matching with backtracking to the last '*': linear in
	// practice, no recursion.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// isListEntry reports whether s is an address or a pattern a List accepts.
func isListEntry(s string) bool {
	var l List
	l.exact = make(map[string]struct{})
	return strings.TrimSpace(s) != "" && l.add(s) == nil
}
