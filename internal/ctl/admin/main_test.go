package admin

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

// commands are the package's commands, as weftctl's table names them.
var commands = []cli.Command{{Name: "leases", Run: Leases}, {Name: "config", Run: Config}, {Name: "etcd-role", Run: EtcdRole}}

func run(ctx context.Context, env *cli.Env, args []string) error {
	return cli.Dispatch(ctx, env, commands, args)
}

// runCtl runs weftctl with args and an environment holding only the variables in vars.
func runCtl(t testing.TB, base *cli.Env, vars map[string]string, args ...string) ctltest.Result {
	t.Helper()
	return ctltest.Run(t, run, base, vars, args...)
}

// ctl runs weftctl against the test server under prefix: args, then the connection flags.
func ctl(t testing.TB, base *cli.Env, prefix string, args ...string) ctltest.Result {
	t.Helper()
	return runCtl(t, base, nil, append(args, ctltest.EtcdArgs(srv, prefix)...)...)
}
