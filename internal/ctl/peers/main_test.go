package peers

import (
	"context"
	"testing"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/ctltest"
)

// runCtl runs weftctl peers: args start with "peers".
func runCtl(t testing.TB, base *cli.Env, vars map[string]string, args ...string) ctltest.Result {
	t.Helper()
	return ctltest.Run(t, func(ctx context.Context, env *cli.Env, args []string) error {
		return cli.Dispatch(ctx, env, []cli.Command{{Name: "peers", Run: Run}}, args)
	}, base, vars, args...)
}
