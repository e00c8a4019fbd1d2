package coding

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agenthost/agenthost/agent"
)

const (
	globMaxResults  = 500
	grepMaxMatches  = 200
	grepMaxLineLen  = 300
	grepMaxFileSize = 10 << 20
)

// glob is a compiled glob pattern: "/"-separated segments where "**"
// matches any number of directories and the other segments use path.Match
// syntax; {a,b} alternatives are expanded up front.
type glob struct {
	alts [][]string
}

// compileGlob parses p, refusing malformed segments now rather than
// silently matching nothing later.
func compileGlob(p string) (*glob, error) {
	p = strings.TrimPrefix(path.Clean("/"+strings.ReplaceAll(p, `\`, "/")), "/")
	if p == "" {
		return nil, errors.New("empty glob pattern")
	}
	g := &glob{}
	for _, alt := range expandBraces(p, 0) {
		segs := strings.Split(alt, "/")
		for _, s := range segs {
			if _, err := path.Match(s, ""); err != nil {
				return nil, fmt.Errorf("glob %q: %w", p, err)
			}
		}
		g.alts = append(g.alts, segs)
	}
	return g, nil
}

// expandBraces turns "a{b,c}d" into "abd" and "acd", nested braces
// included. depth bounds pathological input.
func expandBraces(p string, depth int) []string {
	open := strings.IndexByte(p, '{')
	if open < 0 || depth > 8 {
		return []string{p}
	}
	level, closeAt, commas := 0, -1, []int{}
	for i := open; i < len(p) && closeAt < 0; i++ {
		switch p[i] {
		case '{':
			level++
		case '}':
			if level--; level == 0 {
				closeAt = i
			}
		case ',':
			if level == 1 {
				commas = append(commas, i)
			}
		}
	}
	if closeAt < 0 {
		return []string{p}
	}
	var out []string
	start := open + 1
	for _, end := range append(commas, closeAt) {
		for _, rest := range expandBraces(p[closeAt+1:], depth+1) {
			out = append(out, expandBraces(p[:open]+p[start:end]+rest, depth+1)...)
		}
		start = end + 1
		if len(out) > 256 {
			break
		}
	}
	return out
}

// match reports whether the slash-separated path rel matches.
func (g *glob) match(rel string) bool {
	name := strings.Split(rel, "/")
	for _, pat := range g.alts {
		if matchSegs(pat, name) {
			return true
		}
	}
	return false
}

// mayContain reports whether something below directory rel could match,
// so walks can skip whole subtrees.
func (g *glob) mayContain(rel string) bool {
	if rel == "." {
		return true
	}
	dir := strings.Split(rel, "/")
	for _, pat := range g.alts {
		if prefixMatch(pat, dir) {
			return true
		}
	}
	return false
}

// mentions reports whether a segment of the pattern names dir literally, so
// a walk that normally skips .git or node_modules enters them on request.
func (g *glob) mentions(dir string) bool {
	for _, pat := range g.alts {
		if slices.Contains(pat, dir) {
			return true
		}
	}
	return false
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			pat = pat[1:]
			if len(pat) == 0 {
				return true
			}
			for i := range len(name) + 1 {
				if matchSegs(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

func prefixMatch(pat, dir []string) bool {
	for ; len(dir) > 0; pat, dir = pat[1:], dir[1:] {
		if len(pat) == 0 {
			return false
		}
		if pat[0] == "**" {
			return true
		}
		if ok, _ := path.Match(pat[0], dir[0]); !ok {
			return false
		}
	}
	return len(pat) > 0
}

// relTo returns p relative to base, both slash paths from the root.
func relTo(base, p string) string {
	if base == "." {
		return p
	}
	if p == base {
		return "."
	}
	return strings.TrimPrefix(p, base+"/")
}

// globArgs are the arguments of the glob tool.
type globArgs struct {
	Pattern string `json:"pattern" jsonschema:"glob pattern relative to path: * and ? within a name, ** for any directories, {a,b} alternatives, e.g. **/*.go"`
	Path    string `json:"path,omitempty" jsonschema:"directory to search in (default: the workspace)"`
	Sort    string `json:"sort,omitempty" jsonschema:"mtime (newest first, the default) or name"`
}

func globTool(w *Workspace, _ Options) agent.Tool {
	return newTool("glob", "Find files by name pattern, e.g. **/*.go or src/**/*.{ts,tsx}. Returns workspace-relative paths, newest first unless sort is name.",
		func(ctx context.Context, a globArgs) (string, error) { return w.glob(ctx, a) },
		func(ctx context.Context, a globArgs) (Request, error) {
			req, err := pathRequest(ctx, w, "glob", a.Path)
			if err == nil {
				req.Metadata["pattern"] = a.Pattern
			}
			return req, err
		})
}

func (w *Workspace) glob(ctx context.Context, a globArgs) (string, error) {
	if a.Sort != "" && a.Sort != "mtime" && a.Sort != "name" {
		return "", fmt.Errorf("sort must be mtime or name, not %q", a.Sort)
	}
	g, err := compileGlob(a.Pattern)
	if err != nil {
		return "", err
	}
	base, err := w.Resolve(a.Path)
	if err != nil {
		return "", err
	}
	root, err := w.open()
	if err != nil {
		return "", err
	}
	defer root.Close()
	type hit struct {
		path  string
		mtime time.Time
	}
	var hits []hit
	err = fs.WalkDir(root.FS(), base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == base {
				return err
			}
			return nil // unreadable entries are skipped, not fatal
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel := relTo(base, p)
		if d.IsDir() {
			if rel != "." && (skipDirs[d.Name()] && !g.mentions(d.Name()) || !g.mayContain(rel) || w.hidden(ctx, base, p)) {
				return fs.SkipDir
			}
			return nil
		}
		if !g.match(rel) {
			return nil
		}
		h := hit{path: p}
		if a.Sort != "name" {
			if fi, err := d.Info(); err == nil {
				h.mtime = fi.ModTime()
			}
		}
		hits = append(hits, h)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("glob %s in %s: %w", a.Pattern, base, err)
	}
	if len(hits) == 0 {
		return "No files found.", nil
	}
	if a.Sort != "name" {
		slices.SortStableFunc(hits, func(x, y hit) int { return y.mtime.Compare(x.mtime) })
	}
	var out strings.Builder
	for i, h := range hits {
		if i == globMaxResults {
			fmt.Fprintf(&out, "[%d more files not shown; use a narrower pattern or path]\n", len(hits)-i)
			break
		}
		out.WriteString(h.path)
		out.WriteByte('\n')
	}
	return out.String(), nil
}

// grepArgs are the arguments of the grep tool.
type grepArgs struct {
	Pattern string `json:"pattern" jsonschema:"a regular expression (Go RE2 syntax); start it with (?i) to ignore case"`
	Path    string `json:"path,omitempty" jsonschema:"file or directory to search (default: the workspace)"`
	Include string `json:"include,omitempty" jsonschema:"only search files matching this glob; without a / it matches file names at any depth, e.g. *.go"`
}

func grepTool(w *Workspace, _ Options) agent.Tool {
	return newTool("grep", "Search file contents with a regular expression. Prints path:line:text for each matching line, in path order; binary files and .git are skipped.",
		func(ctx context.Context, a grepArgs) (string, error) { return w.grep(ctx, a) },
		func(ctx context.Context, a grepArgs) (Request, error) {
			req, err := pathRequest(ctx, w, "grep", a.Path)
			if err == nil {
				req.Metadata["pattern"] = a.Pattern
			}
			return req, err
		})
}

// grepHit is one matching line.
type grepHit struct {
	line int
	text string
}

func (w *Workspace) grep(ctx context.Context, a grepArgs) (string, error) {
	if a.Pattern == "" {
		return "", errors.New("pattern is required")
	}
	// (?m) gives ^ and $ their per-line meaning, since whole files are
	// searched at once.
	re, err := regexp.Compile("(?m)" + a.Pattern)
	if err != nil {
		return "", fmt.Errorf("bad pattern: %w", err)
	}
	var include *glob
	if a.Include != "" {
		inc := a.Include
		if !strings.Contains(inc, "/") {
			inc = "**/" + inc
		}
		if include, err = compileGlob(inc); err != nil {
			return "", err
		}
	}
	base, err := w.Resolve(a.Path)
	if err != nil {
		return "", err
	}
	root, err := w.open()
	if err != nil {
		return "", err
	}
	defer root.Close()
	fsys := root.FS()

	// Files are grouped by directory so that each directory is opened
	// once and its files by name, not re-walked from the root each time.
	var files []string
	byDir := map[string][]int{}
	var dirs []string
	err = fs.WalkDir(fsys, base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == base {
				return err
			}
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() {
			if p != base && (skipDirs[d.Name()] || w.hidden(ctx, base, p)) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || p != base && include != nil && !include.match(relTo(base, p)) {
			return nil
		}
		dir := path.Dir(p)
		if _, ok := byDir[dir]; !ok {
			dirs = append(dirs, dir)
		}
		byDir[dir] = append(byDir[dir], len(files))
		files = append(files, p)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("grep in %s: %w", base, err)
	}

	// Search in parallel; print in path order.
	results := make([][]grepHit, len(files))
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), 4, max(len(dirs), 1)) {
		wg.Go(func() {
			var buf []byte
			for ctx.Err() == nil {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= len(dirs) {
					return
				}
				dr, err := root.OpenRoot(dirs[j])
				if err != nil {
					continue
				}
				for _, k := range byDir[dirs[j]] {
					results[k], buf = grepFile(dr, path.Base(files[k]), re, buf)
				}
				dr.Close()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var out strings.Builder
	n, total := 0, 0
	for j, hits := range results {
		total += len(hits)
		for _, h := range hits {
			if n < grepMaxMatches {
				fmt.Fprintf(&out, "%s:%d:%s\n", files[j], h.line, h.text)
				n++
			}
		}
	}
	if total == 0 {
		return "No matches.", nil
	}
	if total > n {
		fmt.Fprintf(&out, "[%d more matches not shown; narrow the pattern, path or include]\n", total-n)
	}
	return out.String(), nil
}

// grepFile returns the lines of one file that match re; binary and huge
// files yield nothing. buf is reused between calls.
func grepFile(dir *os.Root, name string, re *regexp.Regexp, buf []byte) ([]grepHit, []byte) {
	f, err := dir.Open(name)
	if err != nil {
		return nil, buf
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() > grepMaxFileSize {
		return nil, buf
	}
	if need := int(fi.Size()) + 1; cap(buf) < need {
		buf = make([]byte, 0, max(need, 64<<10))
	}
	data := buf[:0]
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err != nil || len(data) == cap(data) {
			break // a file that grew while read is searched as far as it fits
		}
	}
	if isBinary(data[:min(len(data), sniffBytes)]) {
		return nil, buf
	}
	return grepData(data, re), buf
}

// grepData returns the matching lines of data.
func grepData(data []byte, re *regexp.Regexp) []grepHit {
	locs := re.FindAllIndex(data, grepMaxMatches+1)
	if locs == nil {
		return nil
	}
	var hits []grepHit
	line, pos, lastLine := 1, 0, 0
	for _, loc := range locs {
		line += bytes.Count(data[pos:loc[0]], []byte{'\n'})
		pos = loc[0]
		if line == lastLine {
			continue
		}
		lastLine = line
		start := bytes.LastIndexByte(data[:loc[0]], '\n') + 1
		end := bytes.IndexByte(data[loc[0]:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += loc[0]
		}
		text := strings.TrimRight(string(data[start:end]), "\r")
		if len(text) > grepMaxLineLen {
			text = cutUTF8(text, grepMaxLineLen) + "…"
		}
		hits = append(hits, grepHit{line: line, text: text})
	}
	return hits
}
