package ctl

import (
	"context"
	"flag"
	"fmt"
	"path"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// importStep is one key leases import copies or leaves alone.
type importStep struct {
	// Action is copy or skip in a dry run, copied or skipped once applied.
	Action string `json:"action"`
	Key    string `json:"key"`
	From   string `json:"from"`
	Holder string `json:"holder,omitempty"`
	Detail string `json:"detail"`

	value []byte
	// srcLease is the source key's etcd lease, 0 for a reservation or the config; ttl its TTL.
	srcLease int64
	ttl      time.Duration
}

func runLeasesImport(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	var ef etcdFlags
	ef.register(fs)
	from := fs.String("from", "", "prefix to copy from, e.g. "+weftetcd.FlannelPrefix+" (required)")
	apply := fs.Bool("apply", false, "write the copies (default: a dry run showing what would be copied)")
	out := outputFlag(fs)
	if _, err := parse(env, fs, args); err != nil {
		return err
	}
	switch {
	case *from == "":
		return fmt.Errorf("%w: -from: the prefix to copy from is required (flannel's is %s)", ErrUsage, weftetcd.FlannelPrefix)
	case *from == ef.prefix:
		return fmt.Errorf("%w: -from=%q is the -etcd-prefix the copies go to; give weft's prefix with -etcd-prefix", ErrUsage, *from)
	}
	if err := checkPrefix("from", *from); err != nil {
		return err
	}
	s, err := ef.open()
	if err != nil {
		return err
	}
	defer s.close()
	src, err := weftetcd.New(s.cli, weftetcd.Options{Prefix: *from, RequestTimeout: s.timeout})
	if err != nil {
		return err
	}
	var steps []importStep
	if err := s.do(ctx, func(ctx context.Context) error {
		steps, err = s.planImport(ctx, src)
		return err
	}); err != nil {
		return err
	}
	if *apply {
		if err := s.do(ctx, func(ctx context.Context) error { return s.applyImport(ctx, steps) }); err != nil {
			return err
		}
	}
	if out.structured() {
		return out.encode(env.Stdout, struct {
			From    string       `json:"from"`
			To      string       `json:"to"`
			Applied bool         `json:"applied"`
			Steps   []importStep `json:"steps"`
		}{*from, s.prefix, *apply, steps})
	}
	t := newTable(env.Stdout, "ACTION", "KEY", "HOLDER", "DETAIL")
	copies := 0
	for _, st := range steps {
		t.row(st.Action, st.Key, st.Holder, st.Detail)
		if st.Action == "copy" || st.Action == "copied" {
			copies++
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	if *apply {
		fmt.Fprintf(env.Stdout, "Copied %d keys from %s to %s. Start weftd with -etcd-prefix %s on every node;\n"+
			"each node finds its subnet (by node name, or by public IP for flannel's values) and keeps it.\n", copies, *from, s.prefix, s.prefix)
	} else {
		fmt.Fprintf(env.Stdout, "Dry run: %d keys would be copied, nothing was written. Run again with -apply to copy.\n", copies)
	}
	return nil
}

// planImport decides, per source key, whether it is copied. Existing keys are never overwritten.
func (s *session) planImport(ctx context.Context, src *weftetcd.Manager) ([]importStep, error) {
	get := func(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
		resp, err := s.cli.Get(ctx, key, opts...)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", key, err)
		}
		return resp, nil
	}
	srcCfgResp, err := get(src.ConfigKey())
	if err != nil {
		return nil, err
	}
	if len(srcCfgResp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: no network config at %s: nothing to import", ErrNotFound, src.ConfigKey())
	}
	raw := srcCfgResp.Kvs[0].Value
	cfg, err := subnet.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: the config at %s is not valid for weft: %w", ErrRefused, src.ConfigKey(), err)
	}
	cfgStep := importStep{Action: "copy", Key: s.m.ConfigKey(), From: src.ConfigKey(), value: raw,
		Detail: fmt.Sprintf("network %s, /%d subnets, VNI %d, port %d", cfg.Network, cfg.SubnetLen, cfg.Backend.VNI, cfg.Backend.Port)}
	dstCfgResp, err := get(s.m.ConfigKey())
	if err != nil {
		return nil, err
	}
	if len(dstCfgResp.Kvs) > 0 {
		cfgStep.Action = "skip"
		dst, err := subnet.ParseConfig(dstCfgResp.Kvs[0].Value)
		switch {
		case err != nil:
			cfgStep.Detail = fmt.Sprintf("exists and is invalid (%v): not overwritten; fix it with weftctl config set", err)
		case *dst == *cfg:
			cfgStep.Detail = "exists with the same config"
		default:
			cfgStep.Detail = fmt.Sprintf("exists with another config (network %s, /%d subnets): not overwritten; leases are checked against it", dst.Network, dst.SubnetLen)
			cfg = dst
		}
	}
	steps := []importStep{cfgStep}

	srcKeys, err := get(src.SubnetsPrefix(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	dstKeys, err := get(s.m.SubnetsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, kv := range dstKeys.Kvs {
		taken[string(kv.Key)] = true
	}
	planned := map[string]string{}
	for _, kv := range srcKeys.Kvs {
		st := importStep{Action: "skip", From: string(kv.Key), Key: string(kv.Key), value: kv.Value, srcLease: kv.Lease}
		sn, err := subnet.ParseSubnetKey(strings.TrimPrefix(string(kv.Key), src.SubnetsPrefix()))
		if err != nil {
			st.Detail = fmt.Sprintf("malformed in the source: %v", err)
			steps = append(steps, st)
			continue
		}
		st.Key = s.m.SubnetKey(sn)
		attrs, perr := subnet.ParseLeaseAttrs(kv.Value)
		pending := false
		if perr != nil {
			e := malformedEntry(weftetcd.Malformed{Key: st.From, Subnet: sn, EtcdLease: kv.Lease}, kv.Value)
			pending, st.Holder = e.Pending, e.Node
		} else if st.Holder = attrs.NodeName; st.Holder == "" {
			st.Holder = "flannel node " + attrs.PublicIP.String()
		}
		switch {
		case perr != nil && !pending:
			st.Detail = fmt.Sprintf("malformed in the source: %v", perr)
		case !fits(cfg, sn):
			st.Detail = fmt.Sprintf("not a /%d subnet of %s", cfg.SubnetLen, cfg.Network)
		case taken[st.Key]:
			st.Detail = "exists: not overwritten"
		case planned[st.Key] != "":
			st.Detail = fmt.Sprintf("%s names the same subnet and is copied", planned[st.Key])
		case kv.Lease == 0:
			st.Action, st.Detail = "copy", "reservation (no TTL)"
		default:
			ttl, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
			if err != nil {
				return nil, fmt.Errorf("reading etcd lease %x of %s: %w", kv.Lease, kv.Key, err)
			}
			if ttl.TTL <= 0 {
				st.Detail = "expired in the source"
				break
			}
			st.ttl = time.Duration(ttl.GrantedTTL) * time.Second
			st.Action, st.Detail = "copy", fmt.Sprintf("lease with a fresh TTL of %s, as in the source", st.ttl)
		}
		if st.Action == "copy" {
			planned[st.Key] = st.From
			if path.Base(st.From) != path.Base(st.Key) {
				st.Detail += fmt.Sprintf(" (source key %s)", path.Base(st.From))
			}
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// applyImport writes the planned copies, each only if its key still does not exist. Keys that
// shared an etcd lease in the source share a new one.
func (s *session) applyImport(ctx context.Context, steps []importStep) error {
	leases := map[int64]clientv3.LeaseID{}
	used := map[clientv3.LeaseID]bool{}
	defer func() {
		for _, id := range leases {
			if !used[id] {
				_, _ = s.cli.Revoke(context.WithoutCancel(ctx), id)
			}
		}
	}()
	for i := range steps {
		st := &steps[i]
		if st.Action != "copy" {
			st.Action = "skipped"
			continue
		}
		var opts []clientv3.OpOption
		if st.srcLease != 0 {
			id, ok := leases[st.srcLease]
			if !ok {
				g, err := s.cli.Grant(ctx, int64(st.ttl/time.Second))
				if err != nil {
					return fmt.Errorf("granting an etcd lease for %s: %w", st.Key, err)
				}
				id = g.ID
				leases[st.srcLease] = id
			}
			opts = append(opts, clientv3.WithLease(id))
		}
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Version(st.Key), "=", 0)).
			Then(clientv3.OpPut(st.Key, string(st.value), opts...)).
			Commit()
		if err != nil {
			return fmt.Errorf("writing %s: %w", st.Key, err)
		}
		if !resp.Succeeded {
			st.Action, st.Detail = "skipped", "written by someone else meanwhile: not overwritten"
			continue
		}
		st.Action = "copied"
		if st.srcLease != 0 {
			used[leases[st.srcLease]] = true
		}
	}
	return nil
}
