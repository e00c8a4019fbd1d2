package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/platform"
	"github.com/agenthost/agenthost/internal/platform/auth"
)

// runToken runs `agenthost platform token create|list|revoke` directly on
// the platform's store: no running platform is needed, and a token created
// while one runs works at once.
func runToken(ctx context.Context, env *Env, o *platformFlags, args []string) error {
	if len(args) == 0 {
		return Usagef("token: want create, list or revoke")
	}
	if o.org == "" {
		return Usagef("token %s: --org is required", args[0])
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "create", "list":
		if len(rest) > 0 {
			return Usagef("token %s: unexpected argument %q", sub, rest[0])
		}
	case "revoke":
		if len(rest) != 1 {
			return Usagef("token revoke: want one TOKEN_ID (see token list)")
		}
	default:
		return Usagef("token: unknown subcommand %q (want create, list or revoke)", sub)
	}
	if sub == "create" && o.label == "" {
		return Usagef("token create: --label is required (e.g. --label production)")
	}
	st, err := platform.OpenStore(ctx, o.data, o.database)
	if err != nil {
		return err
	}
	defer st.Close()
	if o.database == "" {
		fmt.Fprintf(env.Stderr, "agenthost: platform state in %s\n", o.data)
	} else {
		fmt.Fprintln(env.Stderr, "agenthost: platform state in PostgreSQL (--database)")
	}

	switch sub {
	case "create":
		tok, t, org, err := auth.Issue(ctx, st, o.org, o.label, time.Now(), ids.New)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Token %s for organization %q (label %q):\n\n  %s\n\n", t.ID, org.Name, t.Label, tok)
		fmt.Fprintln(env.Stdout, "Copy it now: it is shown only once (the platform keeps only its hash).")
		fmt.Fprintln(env.Stdout, `Use it as "Authorization: Bearer <token>" on every /api/v1 request.`)
		return nil
	case "list":
		list, err := auth.List(ctx, st, o.org)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tLABEL\tCREATED\tLAST USED")
		for _, t := range list {
			used := "never"
			if !t.LastUsedAt.IsZero() {
				used = t.LastUsedAt.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Label, t.CreatedAt.Local().Format(time.DateTime), used)
		}
		return tw.Flush()
	default: // revoke
		if err := auth.Revoke(ctx, st, o.org, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Token %s revoked.\n", rest[0])
		return nil
	}
}
