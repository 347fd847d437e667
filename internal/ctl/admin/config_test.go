package admin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/ctltest"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "net-conf.json")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name, config, prefix string
		err                  string
	}{
		{"minimal", `{"Network":"10.244.0.0/16"}`, "", ""},
		{"full", `{"Network":"10.244.0.0/16","SubnetLen":25,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.100.0","Backend":{"Type":"vxlan","VNI":4096,"Port":4789,"MTU":1400,"DirectRouting":true}}`, "", ""},
		{"unknown field", `{"Network":"10.244.0.0/16","Netwrok":"x"}`, "", "unknown field Netwrok"},
		{"unknown backend field", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNl":2}}`, "", "unknown field Backend.VNl"},
		{"host bits", `{"Network":"10.244.0.1/16"}`, "", "Network=10.244.0.1/16: host bits set"},
		{"backend", `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`, "", `Backend.Type="host-gw"`},
		{"type", `{"Network":"10.244.0.0/16","SubnetLen":"24"}`, "", "SubnetLen: got string, want number"},
		{"not JSON", `Network: 10.244.0.0/16`, "", "malformed JSON"},
		{"wide VNI", `{"Network":"10.244.0.0/16","Backend":{"VNI":70000}}`, "", ""},
		{"wide VNI shared with flannel", `{"Network":"10.244.0.0/16","Backend":{"VNI":70000}}`, weftetcd.FlannelPrefix, "Backend.VNI=70000: flannel nodes share this prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"config", "validate", writeFile(t, tc.config)}
			if tc.prefix != "" {
				args = append(args, "-etcd-prefix", tc.prefix)
			}
			r := runCtl(t, nil, nil, args...)
			if tc.err == "" {
				if r.Err != nil || !strings.Contains(r.Stdout, "valid") {
					t.Errorf("err %v, output:\n%s", r.Err, r.Stdout)
				}
				return
			}
			if r.Err == nil || !strings.Contains(r.Err.Error(), tc.err) || errors.Is(r.Err, cli.ErrUsage) {
				t.Errorf("err = %v, want one containing %q", r.Err, tc.err)
			}
		})
	}
	r := runCtl(t, &cli.Env{Stdin: strings.NewReader(ctltest.Config)}, nil, "config", "validate", "-", "-o", "json")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	ctltest.Golden(t, "config-validate-json", r.Stdout)
	r = runCtl(t, nil, nil, "config", "validate", filepath.Join(t.TempDir(), "missing.json"))
	if r.Err == nil || !strings.Contains(r.Err.Error(), "missing.json") {
		t.Errorf("missing file: err = %v", r.Err)
	}
}

func TestConfig(t *testing.T) {
	prefix := ctltest.Prefix(t, srv)
	if r := ctl(t, nil, prefix, "config", "get"); !errors.Is(r.Err, cli.ErrNotFound) {
		t.Errorf("get without a config: err = %v", r.Err)
	}
	if r := ctl(t, nil, prefix, "config", "set", writeFile(t, ctltest.Config)); r.Err != nil || !strings.Contains(r.Stdout, "Stored the config") {
		t.Fatalf("set: %v\n%s%s", r.Err, r.Stdout, r.Stderr)
	}
	for _, format := range []string{"table", "json", "yaml"} {
		r := ctl(t, nil, prefix, "config", "get", "-o", format)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		ctltest.Golden(t, "config-get-"+format, r.Stdout)
	}
	if r := ctl(t, nil, prefix, "config", "set", writeFile(t, ctltest.Config)); r.Err != nil || !strings.Contains(r.Stdout, "nothing to do") {
		t.Errorf("set again: %v\n%s", r.Err, r.Stdout)
	}
	ctltest.PutLease(t, srv, prefix, "10.244.1.0/24", ctltest.WeftAttrs(t, "node1", "198.51.100.1", "02:00:00:00:00:01"), 0)
	ctltest.PutLease(t, srv, prefix, "10.244.200.0/24", ctltest.WeftAttrs(t, "node2", "198.51.100.2", "02:00:00:00:00:02"), 0)

	narrow := `{"Network":"10.244.0.0/17","Backend":{"Type":"vxlan"}}`
	for _, tc := range []struct {
		name, config string
		args         []string
		err          error
		stderr       string
	}{
		{"invalid", `{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}`, nil, cli.ErrRefused, ""},
		{"strands a lease", narrow, nil, cli.ErrRefused, "10.244.200.0/24 (node2)"},
		{"force from the environment is ignored", narrow, nil, cli.ErrRefused, "strands 1 existing keys"},
		{"outside the range", `{"Network":"10.244.0.0/16","SubnetMin":"10.244.2.0","Backend":{"Type":"vxlan","VNI":2}}`, nil, nil,
			"1 keys lie outside SubnetMin..SubnetMax"},
		{"forced", narrow, []string{"-force"}, nil, "-force: storing it anyway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"config", "set", writeFile(t, tc.config)}, tc.args...)
			r := runCtl(t, nil, map[string]string{"WEFT_FORCE": "true"}, append(args, ctltest.EtcdArgs(srv, prefix)...)...)
			if !errors.Is(r.Err, tc.err) || (tc.err == nil) != (r.Err == nil) {
				t.Fatalf("err = %v, want %v\n%s", r.Err, tc.err, r.Stderr)
			}
			if !strings.Contains(r.Stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, r.Stderr)
			}
		})
	}
	if v, _, _ := ctltest.Get(t, srv, prefix+"/config"); v != narrow {
		t.Errorf("config after the forced set: %s", v)
	}
	unknown := writeFile(t, `{"Network":"10.244.0.0/17","Backend":{"Type":"vxlan","Turbo":true}}`)
	if r := ctl(t, nil, prefix, "config", "set", unknown); !errors.Is(r.Err, cli.ErrRefused) || !strings.Contains(r.Err.Error(), "unknown field Backend.Turbo") {
		t.Errorf("set a config with an unknown field: err = %v", r.Err)
	}
	ctltest.Put(t, srv, prefix+"/config", `{"Network":"10.244.0.0/16","Bakend":{}}`, 0)
	r := ctl(t, nil, prefix, "config", "get")
	if r.Err == nil || !strings.Contains(r.Err.Error(), "unknown field Bakend") || !strings.Contains(r.Stdout, `"Bakend"`) {
		t.Errorf("get of an invalid config: err %v, output:\n%s", r.Err, r.Stdout)
	}
}

// TestFlannelCompatCustomPrefix: a flannel cluster under a prefix of its own gets the protections of
// flannel's prefix with -flannel-compat (or WEFT_FLANNEL_COMPAT).
func TestFlannelCompatCustomPrefix(t *testing.T) {
	prefix := ctltest.Prefix(t, srv)
	wideVNI := `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`
	wide := writeFile(t, wideVNI)
	if r := runCtl(t, nil, nil, "config", "validate", wide, "-etcd-prefix", prefix); r.Err != nil {
		t.Errorf("validate without flannel nodes: %v", r.Err)
	}
	if r := runCtl(t, nil, nil, "config", "validate", wide, "-etcd-prefix", prefix, "-flannel-compat"); r.Err == nil {
		t.Error("validate with -flannel-compat accepted a VNI flannel cannot read")
	}
	for _, vars := range []map[string]string{nil, {"WEFT_FLANNEL_COMPAT": "true"}} {
		args := []string{"config", "set", wide}
		if vars == nil {
			args = append(args, "-flannel-compat")
		}
		r := runCtl(t, nil, vars, append(args, ctltest.EtcdArgs(srv, prefix)...)...)
		if !errors.Is(r.Err, cli.ErrRefused) || !strings.Contains(r.Err.Error(), "flannel nodes share this prefix") {
			t.Errorf("set %v %v: err = %v", args, vars, r.Err)
		}
	}
	ctltest.Put(t, srv, prefix+"/config", wideVNI, 0)
	r := ctl(t, nil, prefix, "leases", "check", "-flannel-compat")
	if !errors.Is(r.Err, cli.ErrProblems) || !strings.Contains(r.Stdout, "Backend.VNI=70000") {
		t.Errorf("check with -flannel-compat: err %v\n%s", r.Err, r.Stdout)
	}
	if r := ctl(t, nil, prefix, "leases", "check"); r.Err != nil {
		t.Errorf("check without flannel nodes: %v\n%s", r.Err, r.Stdout)
	}
}

// TestFlannelPrefix runs the lease and config commands on flannel's own prefix, where the config
// must also suit flannel's nodes.
func TestFlannelPrefix(t *testing.T) {
	prefix := weftetcd.FlannelPrefix
	ctltest.CleanPrefix(t, srv, prefix)
	ctltest.Put(t, srv, prefix+"/config", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`, 0)
	ctltest.PutLease(t, srv, prefix, "10.244.1.0/24", ctltest.FlannelAttrs(t, "198.51.100.1", "02:00:00:00:00:01"), 3600)
	ctltest.PutLease(t, srv, prefix, "10.244.2.0/24", ctltest.WeftAttrs(t, "node2", "198.51.100.2", "02:00:00:00:00:02"), 3600)
	for _, args := range [][]string{
		{"leases", "list"}, {"leases", "check"}, {"leases", "get", "10.244.1.0/24"}, {"config", "get"},
		{"leases", "reserve", "10.244.3.0/24", "-node", "node3", "-public-ip", "198.51.100.3"},
		{"leases", "reclaim", "10.244.3.0/24", "-yes"},
	} {
		if r := ctl(t, nil, prefix, args...); r.Err != nil {
			t.Errorf("%v: %v\n%s", args, r.Err, r.Stderr)
		}
	}
	wide := writeFile(t, `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`)
	if r := ctl(t, nil, prefix, "config", "set", wide); !errors.Is(r.Err, cli.ErrRefused) || !strings.Contains(r.Err.Error(), "Backend.VNI=70000") {
		t.Errorf("set a VNI flannel cannot read: err = %v", r.Err)
	}
	ctltest.Put(t, srv, prefix+"/config", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`, 0)
	r := ctl(t, nil, prefix, "leases", "check")
	if !errors.Is(r.Err, cli.ErrProblems) || !strings.Contains(r.Stdout, "Backend.VNI=70000") {
		t.Errorf("check under a config flannel cannot read: err %v\n%s", r.Err, r.Stdout)
	}
}
