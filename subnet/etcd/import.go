package etcd

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/subnet"
)

// ImportAction is what ApplyImport does, or did, with one source key.
type ImportAction string

// The actions of an import step: PlanImport plans ImportCopy or ImportSkip, ApplyImport turns them
// into ImportCopied or ImportSkipped.
const (
	ImportCopy    ImportAction = "copy"
	ImportSkip    ImportAction = "skip"
	ImportCopied  ImportAction = "copied"
	ImportSkipped ImportAction = "skipped"
)

// ImportStep is one key of the source prefix that an import copies or leaves alone.
type ImportStep struct {
	Action ImportAction
	// Key is the copy's key under the Manager's prefix, From the source key.
	Key, From string
	// Holder names the node the value names, or the flannel node by its address.
	Holder string
	// Detail says why the key is copied or skipped.
	Detail string
	Value  []byte
	// SrcLease is the source key's etcd lease, 0 for a reservation or the config; TTL is the TTL of
	// the etcd lease its copy gets.
	SrcLease int64
	TTL      time.Duration
}

// PlanImport decides, for the network config and each key under the subnets of prefix from (a
// flannel cluster's, say), whether ApplyImport copies it under the Manager's prefix: keys that
// exist there are never overwritten, and only the keys the config in force covers are copied. A
// missing source config gives an error wrapping ErrNoConfig, one weft cannot use an error wrapping
// subnet.ErrInvalidConfig.
func (m *Manager) PlanImport(ctx context.Context, from string) ([]ImportStep, error) {
	src, err := m.withPrefix(from)
	if err != nil {
		return nil, err
	}
	cfgStep, cfg, err := m.planConfigImport(ctx, src)
	if err != nil {
		return nil, err
	}
	srcKeys, _, err := src.Keys(ctx, 0)
	if err != nil {
		return nil, err
	}
	dstKeys, _, err := m.Keys(ctx, 0)
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, kv := range dstKeys {
		taken[kv.Key] = true
	}
	steps := []ImportStep{cfgStep}
	planned := map[string]string{}
	for _, kv := range srcKeys {
		st, err := m.planKeyImport(ctx, cfg, kv, taken, planned)
		if err != nil {
			return nil, err
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// withPrefix is a Manager on the same client under another prefix.
func (m *Manager) withPrefix(prefix string) (*Manager, error) {
	opts := m.opts
	opts.Prefix = prefix
	return New(m.cli, opts)
}

// planConfigImport plans the copy of src's network config and returns the config the leases must
// fit: the destination's when it has a valid one, else the source's.
func (m *Manager) planConfigImport(ctx context.Context, src *Manager) (ImportStep, *subnet.Config, error) {
	raw, _, err := src.RawConfig(ctx)
	if err != nil {
		return ImportStep{}, nil, fmt.Errorf("%w: nothing to import", err)
	}
	cfg, err := subnet.ParseConfig(raw)
	if err != nil {
		return ImportStep{}, nil, fmt.Errorf("the config at %s is not valid for weft: %w", src.ConfigKey(), err)
	}
	st := ImportStep{Action: ImportCopy, Key: m.ConfigKey(), From: src.ConfigKey(), Value: raw,
		Detail: fmt.Sprintf("network %s, /%d subnets, VNI %d, port %d", cfg.Network, cfg.SubnetLen, cfg.Backend.VNI, cfg.Backend.Port)}
	cur, _, err := m.RawConfig(ctx)
	switch {
	case errors.Is(err, ErrNoConfig):
		return st, cfg, nil
	case err != nil:
		return ImportStep{}, nil, err
	}
	st.Action = ImportSkip
	dst, err := subnet.ParseConfig(cur)
	switch {
	case err != nil:
		st.Detail = fmt.Sprintf("exists and is invalid (%v): not overwritten; fix it with weftctl config set", err)
	case *dst == *cfg:
		st.Detail = "exists with the same config"
	default:
		st.Detail = fmt.Sprintf("exists with another config (network %s, /%d subnets): not overwritten; leases are checked against it", dst.Network, dst.SubnetLen)
		cfg = dst
	}
	return st, cfg, nil
}

// planKeyImport plans the copy of one source key. taken holds the destination's keys, planned the
// source key already copied to each destination key.
func (m *Manager) planKeyImport(ctx context.Context, cfg *subnet.Config, kv KeyValue, taken map[string]bool, planned map[string]string) (ImportStep, error) {
	st := ImportStep{Action: ImportSkip, From: kv.Key, Key: kv.Key, Value: kv.Value, SrcLease: kv.EtcdLease}
	sn := kv.Subnet
	if !sn.IsValid() {
		st.Detail = fmt.Sprintf("malformed in the source: %v", kv.KeyErr)
		return st, nil
	}
	st.Key = m.SubnetKey(sn)
	attrs, perr := subnet.ParseLeaseAttrs(kv.Value)
	pending := false
	if perr != nil {
		id, _ := subnet.ReadLeaseIdentity(kv.Value)
		pending, st.Holder = kv.EtcdLease == 0 && id.Pending(), id.NodeName
	} else if st.Holder = attrs.NodeName; st.Holder == "" {
		st.Holder = "flannel node " + attrs.PublicIP.String()
	}
	switch {
	case perr != nil && !pending:
		st.Detail = fmt.Sprintf("malformed in the source: %v", perr)
	case !cfg.Covers(sn):
		st.Detail = fmt.Sprintf("not a /%d subnet of %s", cfg.SubnetLen, cfg.Network)
	case taken[st.Key]:
		st.Detail = "exists: not overwritten"
	case planned[st.Key] != "":
		st.Detail = fmt.Sprintf("%s names the same subnet and is copied", planned[st.Key])
	case kv.EtcdLease == 0:
		st.Action, st.Detail = ImportCopy, "reservation (no TTL)"
	default:
		if err := m.planLeaseCopy(ctx, &st); err != nil {
			return st, err
		}
	}
	if st.Action == ImportCopy {
		planned[st.Key] = st.From
		if path.Base(st.From) != path.Base(st.Key) {
			st.Detail += fmt.Sprintf(" (source key %s)", path.Base(st.From))
		}
	}
	return st, nil
}

// planLeaseCopy plans the copy of a source key with an etcd lease: with a fresh lease of the
// source's granted TTL while the source lease lives.
func (m *Manager) planLeaseCopy(ctx context.Context, st *ImportStep) error {
	left, granted, err := m.LeaseTTL(ctx, st.SrcLease)
	if err != nil {
		return fmt.Errorf("%s: %w", st.From, err)
	}
	if left <= 0 {
		st.Detail = "expired in the source"
		return nil
	}
	st.TTL = granted
	st.Action, st.Detail = ImportCopy, fmt.Sprintf("lease with a fresh TTL of %s, as in the source", st.TTL)
	return nil
}

// ApplyImport writes the copies PlanImport planned, each only if its key still does not exist, and
// marks each step copied or skipped. Keys that shared an etcd lease in the source share a new one;
// a new etcd lease no copy ended up using is revoked.
func (m *Manager) ApplyImport(ctx context.Context, steps []ImportStep) error {
	leases := map[int64]clientv3.LeaseID{}
	used := map[clientv3.LeaseID]bool{}
	defer func() {
		for _, id := range leases {
			if !used[id] {
				_, _ = m.cli.Revoke(context.WithoutCancel(ctx), id)
			}
		}
	}()
	for i := range steps {
		st := &steps[i]
		if st.Action != ImportCopy {
			st.Action = ImportSkipped
			continue
		}
		id, err := m.importLease(ctx, st, leases)
		if err != nil {
			return err
		}
		if err := m.copyKey(ctx, st, id); err != nil {
			return err
		}
		if st.Action == ImportCopied && id != 0 {
			used[id] = true
		}
	}
	return nil
}

// importLease returns the new etcd lease for the copy of st, granting it for the first key of its
// source lease; 0 for a key without one.
func (m *Manager) importLease(ctx context.Context, st *ImportStep, leases map[int64]clientv3.LeaseID) (clientv3.LeaseID, error) {
	if st.SrcLease == 0 {
		return 0, nil
	}
	if id, ok := leases[st.SrcLease]; ok {
		return id, nil
	}
	g, err := m.cli.Grant(ctx, int64(st.TTL/time.Second))
	m.observe(err)
	if err != nil {
		return 0, fmt.Errorf("granting an etcd lease for %s: %w", st.Key, err)
	}
	leases[st.SrcLease] = g.ID
	return g.ID, nil
}

// copyKey writes the value of st at its key, attached to etcd lease id (none for 0), if the key does
// not exist, and marks st copied or skipped.
func (m *Manager) copyKey(ctx context.Context, st *ImportStep, id clientv3.LeaseID) error {
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(st.Key), "=", 0)).
		Then(clientv3.OpPut(st.Key, string(st.Value), leaseOpts(int64(id))...)).
		Commit()
	m.observe(err)
	if err != nil {
		return fmt.Errorf("writing %s: %w", st.Key, err)
	}
	if !resp.Succeeded {
		st.Action, st.Detail = ImportSkipped, "written by someone else meanwhile: not overwritten"
		return nil
	}
	st.Action = ImportCopied
	return nil
}
