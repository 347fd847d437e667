package etcd_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/weft-net/weft/internal/etcdtest"
	"github.com/weft-net/weft/subnet/etcd"
)

// BenchmarkAcquire measures one node acquiring a subnet of an empty /8 (65535 subnets of /24): a
// listing, an etcd lease grant, the creating transaction and the local state file write.
func BenchmarkAcquire(b *testing.B) {
	const network = `{"Network":"10.0.0.0/8","SubnetLen":24,"Backend":{"Type":"vxlan"}}`
	cfg := parseConfig(b, network)
	var prefix string
	for i := range b.N {
		if i%10000 == 0 {
			b.StopTimer()
			prefix = etcdtest.Prefix(b)
			b.StartTimer()
		}
		b.StopTimer()
		n := newNode(b, srv.Client(), prefix, fmt.Sprintf("node-%d", i), func(o *etcd.Options) { o.Logger = nil })
		b.StartTimer()
		if _, err := n.m.Acquire(testCtx(b), cfg, attrsFor(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcquire256 measures 256 nodes starting at once on a /16 with 255 subnets of /24: every
// subnet is handed out and one node is told there is none left. The goal is under 2 s on two cores.
func BenchmarkAcquire256(b *testing.B) {
	cfg := parseConfig(b, net16)
	for range b.N {
		b.StopTimer()
		prefix := etcdtest.Prefix(b)
		b.StartTimer()
		leases, errs := acquireConcurrently(b, prefix, cfg, 256)
		b.StopTimer()
		var granted, noFree int
		for i, err := range errs {
			switch {
			case errors.Is(err, etcd.ErrNoFreeSubnet):
				noFree++
			case err != nil:
				b.Fatal(err)
			case leases[i] != nil:
				granted++
			}
		}
		if granted != 255 || noFree != 1 {
			b.Fatalf("%d granted, %d without a subnet; want 255 and 1", granted, noFree)
		}
		b.StartTimer()
	}
}
