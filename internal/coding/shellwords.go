package coding

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// shellCommands is what a bash command line does, as the permission rules
// see it.
type shellCommands struct {
	// Patterns holds one entry per simple command, wherever it appears:
	// in a list or pipeline, inside $(...), `...`, <(...), subshells,
	// conditionals, loops and function bodies. Literal words are shown
	// unquoted ('r''m' and $'rm' are both rm), so a rule sees the program
	// that will run; words with expansions keep their source text.
	Patterns []string
	// Opaque is set when the line cannot be fully analysed: it does not
	// parse, a command's name is computed ($cmd, $(...)), or it runs code
	// from a string or file (eval, source, bash -c with a computed
	// script). Such a call is always asked about, whatever allow rules say.
	Opaque bool
}

// codeRunners run their arguments (or a file) as shell code, which the
// rules cannot see.
var codeRunners = map[string]bool{"eval": true, ".": true, "source": true, "trap": true}

// shells take a script with -c; a literal script is analysed as well.
var shells = map[string]bool{"bash": true, "sh": true, "dash": true, "zsh": true, "ksh": true, "busybox": true}

// wrappers run the command in their arguments; that command is matched on
// its own too, so "nohup rm -rf x" meets a rule about rm.
var wrappers = map[string]bool{
	"command": true, "builtin": true, "exec": true, "nohup": true, "nice": true, "env": true,
	"timeout": true, "stdbuf": true, "xargs": true, "sudo": true, "doas": true, "setsid": true,
	"time": true, "ionice": true, "chrt": true, "taskset": true, "unbuffer": true, "watch": true,
}

// analyzeShell parses a bash command line with a real shell parser
// (mvdan.cc/sh) and returns its simple commands.
func analyzeShell(src string) shellCommands {
	return analyzeDepth(src, 0)
}

func analyzeDepth(src string, depth int) shellCommands {
	var out shellCommands
	if strings.TrimSpace(src) == "" {
		return out
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(src), "")
	if err != nil || depth > 4 {
		return shellCommands{Patterns: []string{strings.TrimSpace(src)}, Opaque: true}
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		st, ok := n.(*syntax.Stmt)
		if !ok || st.Cmd == nil {
			return true
		}
		var words []string
		switch c := st.Cmd.(type) {
		case *syntax.CallExpr:
			if len(c.Args) == 0 {
				return true // assignments only; substitutions inside are walked
			}
			for _, a := range c.Assigns {
				words = append(words, assignText(a))
			}
			name, static := wordLiteral(c.Args[0])
			if !static || name == "" {
				out.Opaque = true
			}
			args := make([]string, 0, len(c.Args))
			for _, w := range c.Args {
				lit, _ := wordLiteral(w)
				args = append(args, lit)
			}
			words = append(words, args...)
			defer out.inspect(args, c.Args, depth) // after this command's own pattern
		case *syntax.DeclClause:
			words = append(words, c.Variant.Value)
			for _, a := range c.Args {
				words = append(words, assignText(a))
			}
		default:
			return true
		}
		for _, r := range st.Redirs {
			words = append(words, redirText(r))
		}
		if p := strings.TrimSpace(strings.Join(words, " ")); p != "" {
			out.Patterns = append(out.Patterns, p)
		}
		return true
	})
	return out
}

// inspect looks inside commands that run other code: code runners make the
// line opaque, a shell's literal -c script is analysed, and a wrapper's
// command is added as a pattern of its own.
func (out *shellCommands) inspect(args []string, words []*syntax.Word, depth int) {
	name := args[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	switch {
	case codeRunners[name]:
		out.Opaque = true
	case shells[name]:
		for i := 1; i < len(args); i++ {
			if args[i] == "-c" || strings.HasPrefix(args[i], "-") && strings.HasSuffix(args[i], "c") && !strings.HasPrefix(args[i], "--") {
				if i+1 >= len(args) {
					out.Opaque = true
					return
				}
				if _, static := wordLiteral(words[i+1]); !static {
					out.Opaque = true
					return
				}
				inner := analyzeDepth(args[i+1], depth+1)
				out.Patterns = append(out.Patterns, inner.Patterns...)
				out.Opaque = out.Opaque || inner.Opaque
				return
			}
		}
		if len(args) > 1 {
			out.Opaque = true // a script file or stdin: unseen code
		}
	case wrappers[name]:
		rest := args[1:]
		// Skip the wrapper's own options and settings (env's NAME=value,
		// timeout's duration): what is left starts with the command.
		for len(rest) > 0 && (strings.HasPrefix(rest[0], "-") || strings.Contains(rest[0], "=") || isDuration(rest[0])) {
			rest = rest[1:]
		}
		if len(rest) > 0 {
			out.Patterns = append(out.Patterns, strings.Join(rest, " "))
			sub := make([]*syntax.Word, len(rest))
			copy(sub, words[len(words)-len(rest):])
			out.inspect(rest, sub, depth)
		}
	}
}

func isDuration(s string) bool {
	s = strings.TrimRight(s, "smhd")
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// wordLiteral returns the value a word has when it holds no expansion,
// with its quoting removed, and true; otherwise its source text and false.
func wordLiteral(w *syntax.Word) (string, bool) {
	var b strings.Builder
	static := true
	for _, part := range w.Parts {
		if !partLiteral(&b, part) {
			static = false
			break
		}
	}
	if static {
		return b.String(), true
	}
	return printNode(w), false
}

func partLiteral(b *strings.Builder, part syntax.WordPart) bool {
	switch p := part.(type) {
	case *syntax.Lit:
		b.WriteString(unescapeBare(p.Value))
	case *syntax.SglQuoted:
		if p.Dollar {
			b.WriteString(unescapeANSIC(p.Value))
		} else {
			b.WriteString(p.Value)
		}
	case *syntax.DblQuoted:
		if p.Dollar {
			return false // $"..." is a translated string
		}
		for _, in := range p.Parts {
			lit, ok := in.(*syntax.Lit)
			if !ok {
				return false
			}
			b.WriteString(unescapeDouble(lit.Value))
		}
	default:
		return false
	}
	return true
}

// unescapeBare removes backslashes as bash does outside quotes.
func unescapeBare(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] == '\n' {
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unescapeDouble removes the backslashes that escape $ ` " \ and newline
// inside double quotes; others stay.
func unescapeDouble(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
			i++
			if s[i] == '\n' {
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unescapeANSIC decodes the escapes of $'...'.
func unescapeANSIC(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'e', 'E':
			b.WriteByte(0x1b)
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case 'x', 'u', 'U', '0', '1', '2', '3', '4', '5', '6', '7', 'c':
			// Numeric escapes: keep them visible rather than guess; a rule
			// then does not match and the person is asked.
			b.WriteByte('\\')
			b.WriteByte(s[i])
		default:
			b.WriteByte(s[i]) // \\ \' \" \? and unknown escapes
		}
	}
	return b.String()
}

func assignText(a *syntax.Assign) string {
	if a.Name == nil {
		return printNode(a)
	}
	var b strings.Builder
	b.WriteString(a.Name.Value)
	if a.Index != nil || a.Array != nil {
		return printNode(a)
	}
	if a.Naked {
		return b.String()
	}
	if a.Append {
		b.WriteString("+=")
	} else {
		b.WriteByte('=')
	}
	if a.Value != nil {
		v, _ := wordLiteral(a.Value)
		b.WriteString(v)
	}
	return b.String()
}

func redirText(r *syntax.Redirect) string {
	var b strings.Builder
	if r.N != nil {
		b.WriteString(r.N.Value)
	}
	b.WriteString(r.Op.String())
	if r.Word != nil {
		v, _ := wordLiteral(r.Word)
		b.WriteString(v)
	}
	return b.String()
}

func printNode(n syntax.Node) string {
	var b strings.Builder
	if err := syntax.NewPrinter().Print(&b, n); err != nil {
		return "?"
	}
	return strings.TrimSpace(b.String())
}
