package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/etcdtest"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// TestNetworkConfigUnknownFields: during a rolling upgrade the config in etcd may carry fields a
// newer weft wrote; weftd logs them as a warning, ignores them and runs (and caches the config).
func TestNetworkConfigUnknownFields(t *testing.T) {
	srv, err := etcdtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const prefix = "/weft/network"
	if _, err := srv.Put(ctx, weftetcd.ConfigKey(prefix), `{"Network":"10.244.0.0/16","NextGen":{"a":1},"Backend":{"Type":"vxlan","VNI":9,"Turbo":true}}`, 0); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	mgr, err := weftetcd.New(srv.Client(), weftetcd.Options{Prefix: prefix, NodeName: "n1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, err := networkConfig(ctx, mgr, dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Network.String() != "10.244.0.0/16" || cfg.Backend.VNI != 9 {
		t.Errorf("config %+v", cfg)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, `fields="[Backend.Turbo NextGen]"`) {
		t.Errorf("no warning naming the unknown fields:\n%s", l)
	}
	cached, err := os.ReadFile(filepath.Join(dir, netConfigFile))
	if err != nil || strings.Contains(string(cached), "Turbo") {
		t.Errorf("cached config %s (%v)", cached, err)
	}
}
