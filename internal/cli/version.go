package cli

import (
	"context"
	"fmt"
	"runtime"

	"github.com/agenthost/agenthost/internal/version"
)

func init() {
	register(&Command{
		Name:  "version",
		Short: "print the version",
		Run: func(_ context.Context, env *Env, _ []string) error {
			fmt.Fprintf(env.Stdout, "agenthost %s (%s, %s/%s)\n", version.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	})
}
