// Package cli implements the agenthost command's subcommands. Each
// subcommand lives in its own file and registers itself; cmd/agenthost only
// calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/agenthost/agenthost/client"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/agenthost/agenthost/internal/sandbox"
)

// Command is one subcommand.
type Command struct {
	Name  string
	Usage string // argument synopsis, e.g. "[flags] PROMPT"
	Short string // one line for the command list
	Long  string // shown by `agenthost help NAME`
	// Run executes the command. fs is the command's flag set, already
	// parsed; args are the remaining arguments.
	Run func(ctx context.Context, env *Env, args []string) error
	// Flags declares the command's flags on fs.
	Flags func(fs *flag.FlagSet)
	// Env names, for the flags whose variables are not the usual
	// AGENTHOST_<FLAG>, the environment variables read in their place, in
	// order (e.g. "port": AGENTHOST_PORT, then PORT).
	Env map[string][]string
	// Words are the words the command takes as its first argument (its
	// subcommands), for shell completion.
	Words []string
}

// Env is what a command may touch of the outside world, so tests can run
// commands in-process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// Dir is the working directory.
	Dir string
	// Abort, when not nil, is closed when the user asks again to stop (a
	// second Ctrl-C): Run then returns at once, without waiting for the
	// command's graceful shutdown.
	Abort <-chan struct{}

	// Logger is the logger every command uses, built by Run from
	// --log-format and --log-level (written to Stderr).
	Logger *slog.Logger
	// LogLevel is Logger's level; a command may change it (the relay's
	// --debug).
	LogLevel *slog.LevelVar

	// given holds the flags given on the command line; fromEnv, those set
	// from the environment, with the variable that set each.
	given   map[string]bool
	fromEnv map[string]string
	// setDefault makes Logger slog's default (the real process only).
	setDefault bool
}

// Given reports whether the flag was given on the command line (not
// from the environment, nor its default).
func (e *Env) Given(name string) bool { return e.given[name] }

// UsageError is returned for bad arguments; Main prints the command's usage.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

var commands = map[string]*Command{}

func register(c *Command) {
	if _, dup := commands[c.Name]; dup {
		panic("cli: duplicate command " + c.Name)
	}
	commands[c.Name] = c
}

// Main runs the agenthost command with args (without the program name) and
// returns the exit code. The first interrupt (Ctrl-C, or SIGTERM) ends the
// command's context, which servers take as the start of a graceful
// shutdown; a second one ends the process at once.
func Main(args []string) int {
	// The tool sandbox's init is this binary, started inside bubblewrap.
	sandbox.RunInitIfAsked()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	abort := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		<-sigs
		cancel()
		<-sigs
		close(abort)
	}()
	wd, _ := os.Getwd()
	env := &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Dir: wd,
		Abort: abort, setDefault: true}
	return Run(ctx, env, args)
}

// Run is Main with an explicit context and environment.
func Run(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" && len(args) == 1 {
		printHelp(env.Stdout)
		return 0
	}
	if args[0] == "help" {
		c, ok := commands[args[1]]
		if !ok {
			fmt.Fprintf(env.Stderr, "agenthost: unknown command %q\n", args[1])
			return 2
		}
		commandUsage(env.Stdout, c)
		return 0
	}
	if args[0] == "--version" || args[0] == "-v" {
		args = []string{"version"}
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "agenthost: unknown command %q\n\n", args[0])
		printHelp(env.Stderr)
		return 2
	}
	e := *env
	env = &e
	fs := flag.NewFlagSet("agenthost "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.Flags != nil {
		c.Flags(fs)
	}
	var lf logFlags
	lf.declare(fs)
	err := fs.Parse(interleave(fs, args[1:]))
	if err == nil {
		err = applyEnv(fs, c, env)
	}
	if err == nil {
		err = lf.build(env)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(env.Stdout, c)
			return 0
		}
		fmt.Fprintf(env.Stderr, "agenthost %s: %v\n\n", c.Name, err)
		commandUsage(env.Stderr, c)
		return 2
	}
	if env.setDefault {
		slog.SetDefault(env.Logger)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, env, fs.Args()) }()
	select {
	case err = <-done:
	case <-env.Abort:
		fmt.Fprintf(env.Stderr, "agenthost %s: interrupted again: stopping now\n", c.Name)
		return 130
	}
	if err != nil {
		var ue *UsageError
		if errors.As(err, &ue) {
			fmt.Fprintf(env.Stderr, "agenthost %s: %v\n\n", c.Name, err)
			commandUsage(env.Stderr, c)
			return 2
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return 130
		}
		fmt.Fprintf(env.Stderr, "agenthost %s: %v\n", c.Name, err)
		if errors.Is(err, client.ErrNoRelay) {
			fmt.Fprintf(env.Stderr, "  pass --relay URL (e.g. --relay ws://localhost:8765), or set $%s\n", client.EnvRelayURL)
		}
		return 1
	}
	return 0
}

// interleave lets flags follow positional arguments (`agenthost run "hi"
// --model x`), which the flag package alone does not allow.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if f := fs.Lookup(name); f != nil {
				if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
					continue
				}
				if i+1 < len(args) {
					flags = append(flags, args[i+1])
					i++
				}
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(append(flags, "--"), pos...)
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "agenthost puts AI agents on the network.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: agenthost COMMAND [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Short)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "agenthost help COMMAND" for a command's flags.`)
}

func commandUsage(w io.Writer, c *Command) {
	fmt.Fprintf(w, "Usage: agenthost %s %s\n\n", c.Name, c.Usage)
	if c.Long != "" {
		fmt.Fprintln(w, strings.TrimSpace(c.Long))
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, c.Short)
		fmt.Fprintln(w)
	}
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	if c.Flags != nil {
		c.Flags(fs)
	}
	printFlags(w, "Flags:", fs, c)
	global := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	new(logFlags).declare(global)
	printFlags(w, "Global flags:", global, c)
	fmt.Fprintln(w, "Every flag can also be set with the environment variable shown beside it;")
	fmt.Fprintln(w, "a flag on the command line wins over the variable, which wins over the default.")
}
