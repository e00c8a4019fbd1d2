package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	"github.com/agenthost/agenthost/trust"
)

func init() {
	var coDir, config string
	register(&Command{
		Name:  "credits",
		Usage: "grant ADDRESS N | balance ADDRESS  [--co-dir DIR]",
		Words: []string{"grant", "balance"},
		Short: "manage the local credits ledger that payment onboarding draws on",
		Long: `The credits ledger lives in the host database in the data directory. A
trust policy with "onboard: {payment: N}" lets a stranger become a contact
by paying N credits from its balance (ONBOARD_SUBMIT {payment: N}, or
"payment" in a signed POST /input payload).

  agenthost credits grant ADDRESS N    adds N credits to ADDRESS's balance
  agenthost credits balance ADDRESS    prints the balance

The host need not be stopped: it reads balances on every request.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&coDir, "co-dir", "", "data directory (default: co_dir from host.yaml, else .co)")
			fs.StringVar(&config, "config", "", "host.yaml to read co_dir from")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) < 2 {
				return Usagef("want grant ADDRESS N or balance ADDRESS")
			}
			addr, err := trust.NormalizeAddress(args[1])
			if err != nil {
				return Usagef("%v", err)
			}
			var amount int64
			switch {
			case args[0] == "grant" && len(args) == 3:
				amount, err = strconv.ParseInt(args[2], 10, 64)
				if err != nil || amount <= 0 {
					return Usagef("N must be a positive whole number of credits, got %q", args[2])
				}
			case args[0] == "balance" && len(args) == 2:
			default:
				return Usagef("want grant ADDRESS N or balance ADDRESS")
			}
			dir, err := dataDir(env, coDir, config)
			if err != nil {
				return err
			}
			st, tr, err := openTrustDB(ctx, dir)
			if err != nil {
				return err
			}
			defer st.Close()
			var bal int64
			if amount > 0 {
				bal, err = tr.Grant(ctx, addr, amount)
			} else {
				bal, err = tr.Balance(ctx, addr)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "%s has %d credits\n", addr, bal)
			return nil
		},
	})
}
