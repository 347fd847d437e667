package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/internal/nsutil"
)

// cni times CNI ADD and DEL through libcni on node1 of the fabric, as a runtime calls them (the
// node's conflist: weft, then portmap), in batches: CNIBatch pods attached, then detached.
func (r *runner) cni(ctx context.Context) (*CNIResult, error) {
	f, err := r.fabric(ctx)
	if err != nil {
		return nil, err
	}
	l, node := f.lab, f.nodes[0]
	list, err := libcni.ConfListFromFile(filepath.Join(node.Dir, "10-weft.conflist"))
	if err != nil {
		return nil, fmt.Errorf("the lab's conflist of %s: %w", node.Name, err)
	}
	cfg := libcni.NewCNIConfigWithCacheDir([]string{l.State().BinDir}, filepath.Join(node.Dir, "cni-cache"), nil)
	nodeNS, err := l.NodeNS(node)
	if err != nil {
		return nil, err
	}
	r.log.Info("cni: ADD and DEL through libcni", "ops", r.cfg.CNIOps, "batch", r.cfg.CNIBatch)
	var adds, dels []time.Duration
	res := &CNIResult{}
	defer func() { res.Add, res.Del = Summarize(adds), Summarize(dels) }()
	for done := 0; done < r.cfg.CNIOps; {
		var batch []*libcni.RuntimeConf
		for range min(r.cfg.CNIBatch, r.cfg.CNIOps-done) {
			name := fmt.Sprintf("%sc%d", r.cfg.Prefix, done)
			done++
			if _, err := r.reg.createNetns(name); err != nil {
				return res, err
			}
			rt := &libcni.RuntimeConf{ContainerID: name, NetNS: nsutil.Path(name), IfName: "eth0"}
			start := time.Now()
			err := nodeNS.Do(func(ns.NetNS) error {
				_, err := cfg.AddNetworkList(ctx, list, rt)
				return err
			})
			if err != nil {
				return res, fmt.Errorf("CNI ADD %s: %w", name, err)
			}
			adds = append(adds, time.Since(start))
			batch = append(batch, rt)
		}
		for _, rt := range batch {
			start := time.Now()
			err := nodeNS.Do(func(ns.NetNS) error { return cfg.DelNetworkList(ctx, list, rt) })
			if err != nil {
				return res, fmt.Errorf("CNI DEL %s: %w", rt.ContainerID, err)
			}
			dels = append(dels, time.Since(start))
			if err := r.reg.removeNetns(rt.ContainerID); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}
