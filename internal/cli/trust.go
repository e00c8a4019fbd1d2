package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/agenthost/agenthost/internal/store/sqlite"
	"github.com/agenthost/agenthost/trust"

	"github.com/agenthost/agenthost/trust/policy"
)

// openTrustDB opens the host database in dir (creating and migrating it
// when needed). A running host may hold it open too: SQLite's locking
// lets both write, and the host reads levels and credits on every request.
func openTrustDB(ctx context.Context, dir string) (*sqlite.Store, *sqlite.Trust, error) {
	st, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName))
	if err != nil {
		return nil, nil, err
	}
	return st, st.Trust(nil), nil
}

func init() {
	var coDir, config, url string
	register(&Command{
		Name:  "trust",
		Usage: "promote|demote|block|unblock ADDRESS | list  [--url URL] [--co-dir DIR]",
		Words: []string{"promote", "demote", "block", "unblock", "list"},
		Short: "change a caller's trust level (promote, demote, block, unblock) or list stored levels",
		Long: `Changes the level this agent stores for a caller's address:

  promote   stranger → contact → whitelisted
  demote    whitelisted → contact → stranger
  block     any level → blocked (refused, even with a valid signature)
  unblock   blocked → stranger

By default the command acts on the host database in the data directory
directly (the host need not be stopped). With --url it sends the operation
to a running host instead, signed with the agent's own key from the data
directory (POST /admin/trust); only the host's own key is accepted.

"list" prints the stored levels. The access list files (whitelist,
blacklist) are the operator's to edit; an address on the blacklist stays
blocked whatever is stored.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&coDir, "co-dir", "", "data directory (default: co_dir from host.yaml, else .co)")
			fs.StringVar(&config, "config", "", "host.yaml to read co_dir from")
			fs.StringVar(&url, "url", "", "send the operation to the running host at this URL, signed with the agent's key")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) == 0 {
				return Usagef("want promote, demote, block, unblock or list")
			}
			dir, err := dataDir(env, coDir, config)
			if err != nil {
				return err
			}
			if args[0] == "list" {
				if len(args) != 1 {
					return Usagef("trust list takes no arguments")
				}
				return trustList(ctx, env, dir)
			}
			if len(args) != 2 {
				return Usagef("trust %s takes one ADDRESS", args[0])
			}
			op := policy.AdminOp{Action: policy.AdminAction(args[0]), Address: args[1]}
			if err := op.Validate(); err != nil {
				return Usagef("%v", err)
			}
			var level policy.Level
			if url != "" {
				level, err = trustRemote(ctx, dir, url, op)
			} else {
				level, err = trustLocal(ctx, dir, op)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "%s is now %s\n", op.Address, level)
			return nil
		},
	})
}

func trustLocal(ctx context.Context, dir string, op policy.AdminOp) (policy.Level, error) {
	st, tr, err := openTrustDB(ctx, dir)
	if err != nil {
		return "", err
	}
	defer st.Close()
	return policy.ApplyAdmin(ctx, tr, op)
}

// trustRemote signs op with the agent's key and posts it to the host.
func trustRemote(ctx context.Context, dir, base string, op policy.AdminOp) (policy.Level, error) {
	id, err := trust.LoadIdentity(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no agent key in %s: admin operations are signed with the host's own key", filepath.Join(dir, trust.KeyFile))
	}
	if err != nil {
		return "", err
	}
	env, err := policy.SignAdmin(id, op, time.Now())
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(env)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(base, "/")+"/admin/trust", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Level policy.Level `json:"level"`
		Error string       `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("%s answered %s: %s", base, resp.Status, bytes.TrimSpace(raw))
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusUnauthorized {
			out.Error += fmt.Sprintf(" (signed by %s: is this the host's data directory?)", id.Address())
		}
		return "", fmt.Errorf("%s: %s", resp.Status, out.Error)
	}
	return out.Level, nil
}

func trustList(ctx context.Context, env *Env, dir string) error {
	st, tr, err := openTrustDB(ctx, dir)
	if err != nil {
		return err
	}
	defer st.Close()
	cs, err := tr.Contacts(ctx)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		fmt.Fprintln(env.Stdout, "no stored levels: every signed caller is a stranger unless the access lists say otherwise")
		return nil
	}
	for _, c := range cs {
		fmt.Fprintf(env.Stdout, "%-12s %s\n", c.Level, c.Address)
	}
	return nil
}
