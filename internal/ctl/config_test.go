package ctl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
				if r.err != nil || !strings.Contains(r.stdout, "valid") {
					t.Errorf("err %v, output:\n%s", r.err, r.stdout)
				}
				return
			}
			if r.err == nil || !strings.Contains(r.err.Error(), tc.err) || errors.Is(r.err, ErrUsage) {
				t.Errorf("err = %v, want one containing %q", r.err, tc.err)
			}
		})
	}
	r := runCtl(t, &Env{Stdin: strings.NewReader(testConfig)}, nil, "config", "validate", "-", "-o", "json")
	if r.err != nil {
		t.Fatal(r.err)
	}
	golden(t, "config-validate-json", r.stdout)
	r = runCtl(t, nil, nil, "config", "validate", filepath.Join(t.TempDir(), "missing.json"))
	if r.err == nil || !strings.Contains(r.err.Error(), "missing.json") {
		t.Errorf("missing file: err = %v", r.err)
	}
}

func TestConfig(t *testing.T) {
	prefix := testPrefix(t)
	if r := ctl(t, nil, prefix, "config", "get"); !errors.Is(r.err, ErrNotFound) {
		t.Errorf("get without a config: err = %v", r.err)
	}
	if r := ctl(t, nil, prefix, "config", "set", writeFile(t, testConfig)); r.err != nil || !strings.Contains(r.stdout, "Stored the config") {
		t.Fatalf("set: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	for _, format := range []string{"table", "json", "yaml"} {
		r := ctl(t, nil, prefix, "config", "get", "-o", format)
		if r.err != nil {
			t.Fatal(r.err)
		}
		golden(t, "config-get-"+format, r.stdout)
	}
	if r := ctl(t, nil, prefix, "config", "set", writeFile(t, testConfig)); r.err != nil || !strings.Contains(r.stdout, "nothing to do") {
		t.Errorf("set again: %v\n%s", r.err, r.stdout)
	}
	cli := srv.Client()
	putLease(t, cli, prefix, "10.244.1.0/24", weftAttrs(t, "node1", "198.51.100.1", "02:00:00:00:00:01"), 0)
	putLease(t, cli, prefix, "10.244.200.0/24", weftAttrs(t, "node2", "198.51.100.2", "02:00:00:00:00:02"), 0)

	narrow := `{"Network":"10.244.0.0/17","Backend":{"Type":"vxlan"}}`
	for _, tc := range []struct {
		name, config string
		args         []string
		err          error
		stderr       string
	}{
		{"invalid", `{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}`, nil, ErrRefused, ""},
		{"strands a lease", narrow, nil, ErrRefused, "10.244.200.0/24 (node2)"},
		{"force from the environment is ignored", narrow, nil, ErrRefused, "strands 1 existing keys"},
		{"outside the range", `{"Network":"10.244.0.0/16","SubnetMin":"10.244.2.0","Backend":{"Type":"vxlan","VNI":2}}`, nil, nil,
			"1 keys lie outside SubnetMin..SubnetMax"},
		{"forced", narrow, []string{"-force"}, nil, "-force: storing it anyway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"config", "set", writeFile(t, tc.config)}, tc.args...)
			r := runCtl(t, nil, map[string]string{"WEFT_FORCE": "true"}, append(args, etcdArgs(prefix)...)...)
			if !errors.Is(r.err, tc.err) || (tc.err == nil) != (r.err == nil) {
				t.Fatalf("err = %v, want %v\n%s", r.err, tc.err, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, r.stderr)
			}
		})
	}
	if v, _, _ := get(t, prefix+"/config"); v != narrow {
		t.Errorf("config after the forced set: %s", v)
	}
	unknown := writeFile(t, `{"Network":"10.244.0.0/17","Backend":{"Type":"vxlan","Turbo":true}}`)
	if r := ctl(t, nil, prefix, "config", "set", unknown); !errors.Is(r.err, ErrRefused) || !strings.Contains(r.err.Error(), "unknown field Backend.Turbo") {
		t.Errorf("set a config with an unknown field: err = %v", r.err)
	}
	put(t, cli, prefix+"/config", `{"Network":"10.244.0.0/16","Bakend":{}}`, 0)
	r := ctl(t, nil, prefix, "config", "get")
	if r.err == nil || !strings.Contains(r.err.Error(), "unknown field Bakend") || !strings.Contains(r.stdout, `"Bakend"`) {
		t.Errorf("get of an invalid config: err %v, output:\n%s", r.err, r.stdout)
	}
}

// TestFlannelCompatCustomPrefix: a flannel cluster under a prefix of its own gets the protections of
// flannel's prefix with -flannel-compat (or WEFT_FLANNEL_COMPAT).
func TestFlannelCompatCustomPrefix(t *testing.T) {
	prefix := testPrefix(t)
	cli := srv.Client()
	wideVNI := `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`
	wide := writeFile(t, wideVNI)
	if r := runCtl(t, nil, nil, "config", "validate", wide, "-etcd-prefix", prefix); r.err != nil {
		t.Errorf("validate without flannel nodes: %v", r.err)
	}
	if r := runCtl(t, nil, nil, "config", "validate", wide, "-etcd-prefix", prefix, "-flannel-compat"); r.err == nil {
		t.Error("validate with -flannel-compat accepted a VNI flannel cannot read")
	}
	for _, vars := range []map[string]string{nil, {"WEFT_FLANNEL_COMPAT": "true"}} {
		args := []string{"config", "set", wide}
		if vars == nil {
			args = append(args, "-flannel-compat")
		}
		r := runCtl(t, nil, vars, append(args, etcdArgs(prefix)...)...)
		if !errors.Is(r.err, ErrRefused) || !strings.Contains(r.err.Error(), "flannel nodes share this prefix") {
			t.Errorf("set %v %v: err = %v", args, vars, r.err)
		}
	}
	put(t, cli, prefix+"/config", wideVNI, 0)
	r := ctl(t, nil, prefix, "leases", "check", "-flannel-compat")
	if !errors.Is(r.err, ErrProblems) || !strings.Contains(r.stdout, "Backend.VNI=70000") {
		t.Errorf("check with -flannel-compat: err %v\n%s", r.err, r.stdout)
	}
	if r := ctl(t, nil, prefix, "leases", "check"); r.err != nil {
		t.Errorf("check without flannel nodes: %v\n%s", r.err, r.stdout)
	}
}

// TestFlannelPrefix runs the lease and config commands on flannel's own prefix, where the config
// must also suit flannel's nodes.
func TestFlannelPrefix(t *testing.T) {
	cli := srv.Client()
	prefix := weftetcd.FlannelPrefix
	cleanPrefix(t, cli, prefix)
	put(t, cli, prefix+"/config", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`, 0)
	putLease(t, cli, prefix, "10.244.1.0/24", flannelAttrs(t, "198.51.100.1", "02:00:00:00:00:01"), 3600)
	putLease(t, cli, prefix, "10.244.2.0/24", weftAttrs(t, "node2", "198.51.100.2", "02:00:00:00:00:02"), 3600)
	for _, args := range [][]string{
		{"leases", "list"}, {"leases", "check"}, {"leases", "get", "10.244.1.0/24"}, {"config", "get"},
		{"leases", "reserve", "10.244.3.0/24", "-node", "node3", "-public-ip", "198.51.100.3"},
		{"leases", "reclaim", "10.244.3.0/24", "-yes"},
	} {
		if r := ctl(t, nil, prefix, args...); r.err != nil {
			t.Errorf("%v: %v\n%s", args, r.err, r.stderr)
		}
	}
	wide := writeFile(t, `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`)
	if r := ctl(t, nil, prefix, "config", "set", wide); !errors.Is(r.err, ErrRefused) || !strings.Contains(r.err.Error(), "Backend.VNI=70000") {
		t.Errorf("set a VNI flannel cannot read: err = %v", r.err)
	}
	put(t, cli, prefix+"/config", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":70000}}`, 0)
	r := ctl(t, nil, prefix, "leases", "check")
	if !errors.Is(r.err, ErrProblems) || !strings.Contains(r.stdout, "Backend.VNI=70000") {
		t.Errorf("check under a config flannel cannot read: err %v\n%s", r.err, r.stdout)
	}
}
