// Package docstest runs the documentation: the shell commands of README.md and
// docs/*.md, verbatim, against an agenthost built from this tree
// (TestWalkthrough). This file reads the pages; walk_test.go runs them.
//
// # Marking a block
//
// Every ```sh block of a walked page carries, on the line just above its
// fence, an HTML comment (invisible on GitHub) that says what the walkthrough
// does with it:
//
//	<!-- walkthrough: run -->
//	<!-- walkthrough: run; skip "agenthost bench" (minutes of benchmarks); expect "agenthost keys" "0x" -->
//	<!-- walkthrough: start "agenthost serve"; run -->
//	<!-- walkthrough: skip (needs Docker and an image build of several minutes) -->
//
// Directives, separated by ";":
//
//   - run: run every command of the block, in order, each of which must exit 0.
//   - skip "PREFIX" (REASON): do not run the block's commands that start with
//     PREFIX; the reason is shown in the test log.
//   - skip (REASON): run nothing of this block.
//   - expect "PART" "TEXT": the output of the command whose text contains
//     PART contains TEXT (either may be in single quotes instead, to hold a
//     double quote).
//   - start "COMMAND": before the block, start COMMAND as the reader has it
//     running from an earlier step (e.g. what `make serve` runs).
//
// A page with at least one marker must mark every ```sh block; a page with
// none is listed in the log as not walked.
//
// # Code in other languages
//
// A block a reader copies in another language (a JavaScript client) is the
// testdata file a test runs, shown whole, with <!-- snippet: FILE --> above
// its fence; TestSnippets checks the two are the same (snippet_test.go).
package docstest

import (
	"bufio"
	"fmt"
	"regexp"
	"strings"
)

// Block is one ```sh block of a page and what its marker asks.
type Block struct {
	Page string // file name, for messages
	Line int    // line of the opening fence
	// Commands are the block's commands: lines joined across a trailing
	// backslash, a quote left open (a JSON body over several lines) or a
	// here-document, blank lines dropped.
	Commands []string
	Marked   bool
	Run      bool   // run the block
	Reason   string // why the whole block is skipped
	// Skips maps a command prefix to the reason it is not run.
	Skips map[string]string
	// Expects maps a part of a command to text its output must contain.
	Expects map[string][]string
	// Starts are commands started before the block.
	Starts []string
}

// SkipReason says why cmd is not run, or "" when it is.
func (b *Block) SkipReason(cmd string) string {
	if !b.Run {
		return b.Reason
	}
	for p, r := range b.Skips {
		if strings.HasPrefix(cmd, p) {
			return r
		}
	}
	return ""
}

// Expected is what cmd's output must contain.
func (b *Block) Expected(cmd string) []string {
	var out []string
	for p, e := range b.Expects {
		if strings.Contains(cmd, p) {
			out = append(out, e...)
		}
	}
	return out
}

var (
	markerRe = regexp.MustCompile(`^<!--\s*walkthrough:\s*(.*?)\s*-->$`)
	skipCmd  = regexp.MustCompile(`^skip\s+"([^"]+)"\s+\((.+)\)$`)
	skipAll  = regexp.MustCompile(`^skip\s+\((.+)\)$`)
	expectRe = regexp.MustCompile(`^expect\s+(?:"([^"]+)"|'([^']+)')\s+(?:"([^"]+)"|'([^']+)')$`)
	startRe  = regexp.MustCompile(`^start\s+"([^"]+)"$`)
	// heredocRe is a command that goes on with a here-document (cat >
	// file <<'EOF' … EOF): its lines up to the word are part of it.
	heredocRe = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_]+)['"]?\s*$`)
)

// Parse returns the ```sh blocks of a page with their markers.
func Parse(page, text string) ([]Block, error) {
	var (
		blocks  []Block
		marker  string
		hasMark bool
		in      *Block
		cont    string
		indent  string // of the open block's fence: a block in a list item is indented
		heredoc string // the word that ends the here-document being read
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if in != nil {
			line = strings.TrimPrefix(line, indent)
			if heredoc != "" {
				cont += line
				if line == heredoc {
					in.Commands = append(in.Commands, cont)
					cont, heredoc = "", ""
				} else {
					cont += "\n"
				}
				continue
			}
			if strings.HasPrefix(line, "```") {
				if cont != "" {
					in.Commands = append(in.Commands, cont)
					cont = ""
				}
				blocks = append(blocks, *in)
				in = nil
				continue
			}
			if m := heredocRe.FindStringSubmatch(line); m != nil && !openQuote(cont+line) {
				cont += line + "\n"
				heredoc = m[1]
				continue
			}
			if strings.HasSuffix(line, `\`) || openQuote(cont+line) {
				cont += line + "\n"
				continue
			}
			if cont != "" {
				line, cont = cont+line, ""
			}
			if strings.TrimSpace(line) != "" {
				in.Commands = append(in.Commands, line)
			}
			continue
		}
		trimmed := strings.TrimSpace(line)
		if m := markerRe.FindStringSubmatch(trimmed); m != nil {
			marker, hasMark = m[1], true
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			indent = line[:strings.Index(line, "```")]
			info := strings.Fields(strings.TrimPrefix(trimmed, "```"))
			if len(info) > 0 && info[0] == "sh" {
				b := Block{Page: page, Line: n, Skips: map[string]string{}, Expects: map[string][]string{}}
				if hasMark {
					if err := b.parseMarker(marker); err != nil {
						return nil, fmt.Errorf("%s:%d: %w", page, n-1, err)
					}
				}
				in = &b
			}
		}
		if trimmed != "" {
			marker, hasMark = "", false
		}
	}
	if in != nil {
		return nil, fmt.Errorf("%s:%d: code block never closed", page, in.Line)
	}
	return blocks, sc.Err()
}

func (b *Block) parseMarker(m string) error {
	b.Marked = true
	for _, d := range directives(m) {
		d = strings.TrimSpace(d)
		switch {
		case d == "run":
			b.Run = true
		case skipAll.MatchString(d):
			b.Reason = skipAll.FindStringSubmatch(d)[1]
		case skipCmd.MatchString(d):
			s := skipCmd.FindStringSubmatch(d)
			b.Skips[s[1]] = s[2]
		case expectRe.MatchString(d):
			s := expectRe.FindStringSubmatch(d)
			part, text := s[1]+s[2], s[3]+s[4]
			b.Expects[part] = append(b.Expects[part], text)
		case startRe.MatchString(d):
			b.Starts = append(b.Starts, startRe.FindStringSubmatch(d)[1])
		default:
			return fmt.Errorf("walkthrough marker: cannot read %q (want run, skip \"PREFIX\" (REASON), skip (REASON), expect \"PART\" \"TEXT\" or start \"COMMAND\")", d)
		}
	}
	if b.Run == (b.Reason != "") {
		return fmt.Errorf("walkthrough marker %q: say either run or skip (REASON)", m)
	}
	return nil
}

// directives splits a marker at the semicolons outside quotes and
// parentheses, so that reasons may hold them.
func directives(m string) []string {
	var (
		out   []string
		depth int
		quote rune
		start int
	)
	for i, r := range m {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ';' && depth == 0:
			out = append(out, m[start:i])
			start = i + 1
		}
	}
	return append(out, m[start:])
}

// openQuote says whether shell text ends inside a quoted string, as a
// multi-line JSON body in single quotes does at the end of its first line.
func openQuote(text string) bool {
	var (
		quote   rune
		escaped bool
		comment bool
		prev    rune = '\n'
	)
	for _, r := range text {
		switch {
		case comment:
			comment = r != '\n'
		case escaped:
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			}
		case r == '\\':
			escaped = true
		case quote == '"':
			if r == '"' {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (prev == ' ' || prev == '\t' || prev == '\n'):
			comment = true // quotes in a comment do not count
		}
		prev = r
	}
	return quote != 0
}
