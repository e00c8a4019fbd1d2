package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/trust"
)

// dataDir finds the host's data directory: --co-dir, else co_dir from
// host.yaml (--config, or the project's .co/host.yaml), else the
// project's .co (the nearest .co/ from the working directory up, see
// findProject).
func dataDir(env *Env, coDir, config string) (string, error) {
	if coDir != "" {
		return env.abs(coDir), nil
	}
	proj, err := findProject(env)
	if err != nil {
		return "", err
	}
	opts := []host.Option{host.WithDir(proj.Root)}
	if config != "" {
		opts = append(opts, host.WithConfigFile(env.abs(config)))
	}
	cfg, err := host.LoadConfig(opts...)
	if err != nil {
		return "", err
	}
	return cfg.CoDir, nil
}

func init() {
	var coDir, config, out string
	var force bool
	register(&Command{
		Name:  "keys",
		Usage: "[show | export [--out FILE] | import [--force] FILE|-] [--co-dir DIR]",
		Words: []string{"show", "export", "import"},
		Short: "show the agent's address (creating keys when none), export or import its key",
		Long: `Without arguments (or "show"), prints the address of the agent's identity in
<co_dir>/keys/agent.key, creating the key (mode 0600) when there is none.
The private key is never printed, except by "export":

  agenthost keys export            prints the key (64 hex characters) on stdout
  agenthost keys export --out F    writes it to F (mode 0600) instead
  agenthost keys import F          installs a key from F ("-" reads stdin): 64
                                   hex characters, or a raw 32-byte agent.key

import refuses to replace a different existing key unless --force is given.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&coDir, "co-dir", "", "data directory (default: co_dir from host.yaml, else .co)")
			fs.StringVar(&config, "config", "", "host.yaml to read co_dir from")
			fs.StringVar(&out, "out", "", "export: write the key to this file instead of stdout")
			fs.BoolVar(&force, "force", false, "import: replace an existing, different key")
		},
		Run: func(_ context.Context, env *Env, args []string) error {
			dir, err := dataDir(env, coDir, config)
			if err != nil {
				return err
			}
			sub := "show"
			if len(args) > 0 {
				sub, args = args[0], args[1:]
			}
			switch sub {
			case "show":
				if len(args) > 0 {
					return Usagef("keys show takes no arguments")
				}
				return keysShow(env, dir)
			case "export":
				if len(args) > 0 {
					return Usagef("keys export takes no arguments; use --out FILE")
				}
				return keysExport(env, dir, out)
			case "import":
				if len(args) != 1 {
					return Usagef("keys import takes one argument: a key file, or - for stdin")
				}
				return keysImport(env, dir, args[0], force)
			}
			return Usagef("unknown keys command %q (want show, export or import)", sub)
		},
	})
}

func keysShow(env *Env, dir string) error {
	id, created, err := trust.LoadOrCreateIdentity(dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, id.Address())
	if created {
		fmt.Fprintf(env.Stderr, "created a new identity in %s\n", filepath.Join(dir, trust.KeyFile))
	}
	return nil
}

func keysExport(env *Env, dir, out string) error {
	id, err := trust.LoadIdentity(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no key in %s; run \"agenthost keys\" to create one", filepath.Join(dir, trust.KeyFile))
	}
	if err != nil {
		return err
	}
	text := hex.EncodeToString(id.Seed()) + "\n"
	if out == "" {
		fmt.Fprintf(env.Stderr, "the private key of %s follows; anyone holding it can act as this agent\n", id.Address())
		_, err = io.WriteString(env.Stdout, text)
		return err
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(env.Dir, out)
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("export: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(env.Stdout, "exported the key of %s to %s\n", id.Address(), out)
	return nil
}

// parseKey reads an exported key: 64 hex characters (0x optional,
// surrounding space ignored) or the raw 32-byte seed of agent.key.
func parseKey(b []byte) (*trust.Identity, error) {
	if len(b) == 32 {
		if id, err := trust.IdentityFromSeed(b); err == nil && !isHexText(b) {
			return id, nil
		}
	}
	s := strings.TrimSpace(string(b))
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	seed, err := hex.DecodeString(s)
	if err != nil || len(seed) != 32 {
		return nil, errors.New("not a key: want 64 hex characters or a raw 32-byte key file")
	}
	return trust.IdentityFromSeed(seed)
}

func isHexText(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func keysImport(env *Env, dir, src string, force bool) error {
	var b []byte
	var err error
	if src == "-" {
		b, err = io.ReadAll(io.LimitReader(env.Stdin, 4096))
	} else {
		if !filepath.IsAbs(src) {
			src = filepath.Join(env.Dir, src)
		}
		b, err = os.ReadFile(src)
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	id, err := parseKey(b)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if old, err := trust.LoadIdentity(dir); err == nil && old.Address() != id.Address() {
		if !force {
			return fmt.Errorf("import: %s already holds %s; use --force to replace it (the old key is lost unless exported)", filepath.Join(dir, trust.KeyFile), old.Address())
		}
		if err := os.Remove(filepath.Join(dir, trust.KeyFile)); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	if err := trust.SaveIdentity(dir, id); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	fmt.Fprintf(env.Stdout, "imported %s into %s\n", id.Address(), filepath.Join(dir, trust.KeyFile))
	return nil
}
