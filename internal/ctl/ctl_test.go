package ctl

import (
	"errors"
	"strings"
	"testing"

	"github.com/weft-net/weft/internal/ctl/ctltest"
)

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  error
		out  string
	}{
		{nil, ErrUsage, "Commands:"},
		{[]string{"help"}, nil, "Commands:"},
		{[]string{"frobnicate"}, ErrUsage, ""},
		{[]string{"leases"}, ErrUsage, ""},
		{[]string{"leases", "help"}, nil, "reclaim SUBNET"},
		{[]string{"leases", "frob"}, ErrUsage, ""},
		{[]string{"leases", "list", "-h"}, nil, ""},
		{[]string{"leases", "list", "extra"}, ErrUsage, ""},
		{[]string{"leases", "list", "-o", "xml"}, ErrUsage, ""},
		{[]string{"leases", "list", "-etcd-prefix", "weft/"}, ErrUsage, ""},
		{[]string{"leases", "list", "-etcd-endpoints", ""}, ErrUsage, ""},
		{[]string{"leases", "list", "-etcd-endpoints", "ftp://x:1"}, ErrUsage, ""},
		{[]string{"leases", "list", "-etcd-cert", "c.pem"}, ErrUsage, ""},
		{[]string{"leases", "list", "-etcd-timeout", "0s"}, ErrUsage, ""},
		{[]string{"leases", "get", "-o", "json"}, ErrUsage, ""},
		{[]string{"config"}, ErrUsage, ""},
		{[]string{"config", "validate"}, ErrUsage, ""},
		{[]string{"config", "set", "-", "-etcd-prefix", "x"}, ErrUsage, ""},
		{[]string{"peers", "-health-addr", "%zz"}, ErrUsage, ""},
		{[]string{"doctor", "-o", "csv"}, ErrUsage, ""},
		{[]string{"etcd-role", "-role", "a b"}, ErrUsage, ""},
		{[]string{"etcd-role", "-user", ""}, ErrUsage, ""},
		{[]string{"version"}, nil, "weftctl dev\n"},
		{[]string{"version", "-o", "json"}, ErrUsage, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCtl(t, nil, nil, tc.args...)
			if !errors.Is(r.Err, tc.err) || (tc.err == nil) != (r.Err == nil) {
				t.Fatalf("err = %v, want %v", r.Err, tc.err)
			}
			if !strings.Contains(r.Stdout, tc.out) {
				t.Errorf("stdout lacks %q:\n%s", tc.out, r.Stdout)
			}
		})
	}
}

func runCtl(t testing.TB, base *Env, vars map[string]string, args ...string) ctltest.Result {
	t.Helper()
	return ctltest.Run(t, Run, base, vars, args...)
}
