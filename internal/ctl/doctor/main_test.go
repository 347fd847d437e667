package doctor

import (
	"context"
	"testing"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/ctltest"
	"github.com/weft-net/weft/internal/etcdtest"
)

// srv is the etcd server the package's tests share; each test works under its own prefix.
var srv *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, &srv) }

// runCtl runs weftctl doctor: args start with "doctor".
func runCtl(t testing.TB, base *cli.Env, vars map[string]string, args ...string) ctltest.Result {
	t.Helper()
	return ctltest.Run(t, func(ctx context.Context, env *cli.Env, args []string) error {
		return cli.Dispatch(ctx, env, []cli.Command{{Name: "doctor", Run: Run}}, args)
	}, base, vars, args...)
}
