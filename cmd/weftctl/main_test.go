package main

import (
	"testing"

	"github.com/weft-net/weft/internal/godeps"
)

// TestDependencies keeps weftctl an etcd client: it links neither an etcd server (the demo's lives in
// weft-demo) nor weftd's daemon package.
func TestDependencies(t *testing.T) {
	godeps.Forbid(t, "cmd/weftctl", "github.com/weft-net/weft/internal/ctl/admin",
		"go.etcd.io/etcd/server/", "github.com/weft-net/weft/daemon")
}
