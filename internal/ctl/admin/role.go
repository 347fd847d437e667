package admin

import (
	"context"
	"fmt"
	"strings"

	"github.com/weft-net/weft/internal/ctl/cli"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_.-=:,@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// validName checks an etcd role or user name given on the command line.
func validName(flagName, v string) error {
	if v == "" || strings.ContainsAny(v, " \t\n\x00") || len(v) > 128 {
		return fmt.Errorf("%w: -%s=%q: want a name without whitespace, at most 128 characters", cli.ErrUsage, flagName, v)
	}
	return nil
}

func EtcdRole(_ context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "etcd-role", "[flags]")
	var prefix string
	cli.RegisterPrefix(fs, &prefix)
	role := fs.String("role", "weftd", "etcd role to create")
	user := fs.String("user", "weftd", "etcd user to create and give the role")
	if _, err := cli.Parse(env, fs, args); err != nil {
		return err
	}
	if err := cli.CheckPrefix("etcd-prefix", prefix); err != nil {
		return err
	}
	if err := validName("role", *role); err != nil {
		return err
	}
	if err := validName("user", *user); err != nil {
		return err
	}
	r, u := shellQuote(*role), shellQuote(*user)
	cfg, subnets := shellQuote(weftetcd.ConfigKey(prefix)), shellQuote(weftetcd.SubnetsPrefix(prefix))
	fmt.Fprintf(env.Stdout, `# A least-privilege etcd role for weftd: read the network config %[1]s/config, read and write the
# subnet leases under %[1]s/subnets/, nothing else (weftctl config set needs an admin with readwrite
# on %[1]s/). Run as etcd's root user (add --endpoints and the TLS flags you use).
etcdctl role add %[2]s
etcdctl role grant-permission %[2]s read %[5]s
etcdctl role grant-permission %[2]s --prefix=true readwrite %[3]s
etcdctl user add %[4]s  # asks for the password
etcdctl user grant-role %[4]s %[2]s
# With authentication enabled (etcdctl auth enable, once root exists), run weftd with
#   -etcd-username %[4]s and WEFT_ETCD_PASSWORD=<password> in its environment,
# or with a client certificate whose common name is %[4]s (etcd's --client-cert-auth).
`, prefix, r, subnets, u, cfg)
	return nil
}
