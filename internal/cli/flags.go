package cli

import (
	"flag"
	"fmt"
	"github.com/agenthost/agenthost/internal/obs"
	"io"
	"log/slog"
	"strings"
)

// EnvPrefix starts the environment variable of every flag: --runtime-memory
// is also AGENTHOST_RUNTIME_MEMORY.
const EnvPrefix = "AGENTHOST_"

// envVar is the usual variable of a flag: EnvPrefix and the flag's name in
// capitals, dashes as underscores.
func envVar(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envVars are the variables that may set a flag of c, in order.
func envVars(c *Command, flagName string) []string {
	if vs, ok := c.Env[flagName]; ok {
		return vs
	}
	return []string{envVar(flagName)}
}

// applyEnv sets every flag of fs not given on the command line from the
// first of its environment variables that is set and not empty: the command
// line wins over the environment, which wins over the defaults. A value the
// flag refuses is an error naming the variable.
func applyEnv(fs *flag.FlagSet, c *Command, env *Env) error {
	env.given = map[string]bool{}
	env.fromEnv = map[string]string{}
	fs.Visit(func(f *flag.Flag) { env.given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || env.given[f.Name] || env.Getenv == nil {
			return
		}
		for _, name := range envVars(c, f.Name) {
			v := env.Getenv(name)
			if v == "" {
				continue
			}
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q (for --%s): %v", name, v, f.Name, serr)
				return
			}
			env.fromEnv[f.Name] = name
			return
		}
	})
	return err
}

// printFlags writes fs's flags under title, each with its environment
// variables, in the flag package's layout with double dashes.
func printFlags(w io.Writer, title string, fs *flag.FlagSet, c *Command) {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, title)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintln(w, line)
		usage = strings.ReplaceAll(usage, "\n", "\n        ")
		if d := f.DefValue; !zeroDefault(d) && !strings.Contains(usage, "default") {
			if typ == "string" {
				d = fmt.Sprintf("%q", d)
			}
			usage += " (default " + d + ")"
		}
		fmt.Fprintf(w, "        %s\n        [env %s]\n", usage, strings.Join(envVars(c, f.Name), ", "))
	})
	fmt.Fprintln(w)
}

func zeroDefault(d string) bool {
	switch d {
	case "", "0", "false", "0s", "[]":
		return true
	}
	return false
}

// logFlags are the flags every command has for its logs.
type logFlags struct {
	format, level string
}

func (l *logFlags) declare(fs *flag.FlagSet) {
	fs.StringVar(&l.format, "log-format", "text", "log format: text (key=value lines) or json (one object a line)")
	fs.StringVar(&l.level, "log-level", "info", "least important log level written: debug, info, warn or error")
}

// build makes env's logger: the one place every command's logger comes
// from.
func (l *logFlags) build(env *Env) error {
	level := new(slog.LevelVar)
	switch strings.ToLower(l.level) {
	case "debug":
		level.Set(slog.LevelDebug)
	case "info":
		level.Set(slog.LevelInfo)
	case "warn", "warning":
		level.Set(slog.LevelWarn)
	case "error":
		level.Set(slog.LevelError)
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(l.format) {
	case "text":
		h = slog.NewTextHandler(env.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(env.Stderr, opts)
	default:
		return fmt.Errorf("--log-format %q: want text or json", l.format)
	}
	env.Logger = slog.New(obs.LogHandler(h)) // request ids and traces on the lines of a request
	env.LogLevel = level
	return nil
}
