package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/weft-net/weft/internal/atomicfile"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// netConfigFile caches the last good network config in the state dir, so that weftd restarted while
// etcd is down (or after someone wrote an invalid config) runs on what it ran on before.
const netConfigFile = "netconfig.json"

// configProbe is how long start-up tries etcd, for the config and then for the lease, before it
// falls back to what the state dir holds (the cached config, a provisional lease): short, because
// a node rebooted during an outage routes only once it has both, and what it falls back to is
// confirmed or replaced as soon as etcd answers.
const configProbe = time.Second

// networkConfig returns the network config from etcd and caches it. When a cached config exists and
// etcd does not give a valid one within configProbe, the cached one is used; without a cache it
// waits for etcd.
func networkConfig(ctx context.Context, mgr *weftetcd.Manager, stateDir string, log *slog.Logger) (*subnet.Config, error) {
	path := filepath.Join(stateDir, netConfigFile)
	cached, cacheErr := readCachedConfig(path)
	if cacheErr != nil {
		if !errors.Is(cacheErr, os.ErrNotExist) {
			log.Warn("ignoring the cached network config", "path", path, "err", cacheErr)
		}
		cfg, err := mgr.WaitConfig(ctx)
		if err != nil {
			return nil, err
		}
		return cfg, cacheConfig(path, cfg)
	}
	pctx, cancel := context.WithTimeout(ctx, configProbe)
	defer cancel()
	cfg, err := mgr.WaitConfig(pctx)
	if err == nil {
		return cfg, cacheConfig(path, cfg)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	log.Warn("no valid network config from etcd; running on the last good one", "path", path, "err", err)
	return cached, nil
}

func readCachedConfig(path string) (*subnet.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return subnet.ParseConfig(data)
}

func cacheConfig(path string, cfg *subnet.Config) error {
	data, err := cfg.MarshalJSON()
	if err != nil {
		return err
	}
	if cur, err := os.ReadFile(path); err == nil && string(cur) == string(data) {
		return nil
	}
	return atomicfile.Write(path, data, 0o600)
}
