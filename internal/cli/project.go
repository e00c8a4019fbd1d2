package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

// project is where a command that uses a host's .co/ works: the nearest
// directory holding one, from the working directory up, as git finds .git.
type project struct {
	// Root is the project's directory: its .co/, host.yaml's relative
	// paths and .env are there. Without a .co/ anywhere up, the working
	// directory (where serve then makes one).
	Root string
	// Found is false when no .co/ was found (Root is the working
	// directory); Parent is true when it was found above the working
	// directory.
	Found, Parent bool
	// Dir is the working directory the search started from.
	Dir string
}

// ErrForeignProject is returned when the nearest .co/ above the working
// directory belongs to another user.
var ErrForeignProject = errors.New("the nearest .co/ above the working directory belongs to another user")

// findProject walks up from env.Dir to the nearest directory holding a
// .co directory. It stops before the home directory: ~/.co holds the
// user's own key (agenthost call's), not a project, so a directory under
// home without a .co of its own is not taken for part of a project rooted
// at home. The working directory's own .co always counts, home's included.
//
// A .co above the working directory that another user owns is refused, as
// git refuses a .git of another owner: anyone may make /tmp/.co, and
// serve would take its host.yaml (its trust level, its model endpoint) for
// the project's.
func findProject(env *Env) (project, error) {
	p := project{Root: env.Dir, Dir: env.Dir}
	home := ""
	if env.Getenv != nil {
		home = filepath.Clean(env.Getenv("HOME"))
	}
	start := filepath.Clean(env.Dir)
	for dir := start; ; {
		co := filepath.Join(dir, host.DefaultCoDir)
		if fi, err := os.Stat(co); err == nil && fi.IsDir() {
			if uid, ok := ownerOf(fi); ok && dir != start && uid != os.Geteuid() {
				return p, fmt.Errorf("%w: %s is owned by uid %d, not by you (uid %d); run in a directory with a .co/ of your own (agenthost init), or name one with --co-dir",
					ErrForeignProject, co, uid, os.Geteuid())
			}
			p.Root, p.Found, p.Parent = dir, true, dir != start
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir || parent == home {
			return p, nil
		}
		dir = parent
	}
}

// describe says which project, config file and identity serve uses.
func (p project) describe(w io.Writer, cfg *host.Config) {
	switch {
	case p.Parent:
		fmt.Fprintf(w, "project:  %s (the nearest .co/ above %s)\n", p.Root, p.Dir)
	case !p.Found:
		fmt.Fprintf(w, "project:  %s (no .co/ here or above: making one here)\n", p.Root)
	default:
		fmt.Fprintf(w, "project:  %s\n", p.Root)
	}
	if cfg.File != "" {
		fmt.Fprintf(w, "config:   %s\n", cfg.File)
	} else {
		fmt.Fprintln(w, `config:   none, the defaults ("agenthost init" writes a commented .co/host.yaml)`)
	}
	key := filepath.Join(cfg.CoDir, trust.KeyFile)
	if _, err := os.Stat(key); err == nil {
		fmt.Fprintf(w, "identity: %s\n", key)
	} else {
		fmt.Fprintf(w, "identity: %s (new)\n", key)
	}
}

// abs makes a path given on the command line absolute against the working
// directory (not the project's).
func (e *Env) abs(path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(e.Dir, path)
}

// plural is "1 run", "2 runs".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
