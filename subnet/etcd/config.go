package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weft-net/weft/subnet"
)

// ParseConfig parses a network config strictly, as weftctl and local config files must be: with
// flannelCompat (Options.FlannelCompat), it must also suit the flannel nodes sharing the prefix
// (subnet.Config.ValidateFlannelShared).
func ParseConfig(data []byte, flannelCompat bool) (*subnet.Config, error) {
	cfg, err := subnet.ParseConfig(data)
	if err != nil {
		return nil, err
	}
	return cfg, checkShared(cfg, flannelCompat)
}

// checkShared adds the checks of a config shared with flannel nodes.
func checkShared(cfg *subnet.Config, flannelCompat bool) error {
	if flannelCompat {
		return cfg.ValidateFlannelShared()
	}
	return nil
}

// RawConfig returns the value at ConfigKey, unparsed, and the revision of its last write. A missing
// key gives an error wrapping ErrNoConfig.
func (m *Manager) RawConfig(ctx context.Context) ([]byte, int64, error) {
	key := m.ConfigKey()
	resp, err := m.cli.Get(ctx, key)
	m.observe(err)
	if err != nil {
		return nil, 0, fmt.Errorf("reading network config %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%w: key %s does not exist", ErrNoConfig, key)
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// StoreConfig writes data at ConfigKey if nobody wrote the key since revision rev (RawConfig's), or,
// with rev 0, if the key does not exist; otherwise the error wraps ErrConfigChanged. It does not
// validate data: ParseConfig does.
func (m *Manager) StoreConfig(ctx context.Context, data []byte, rev int64) error {
	key := m.ConfigKey()
	cmp := clientv3.Compare(clientv3.Version(key), "=", 0)
	if rev != 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	}
	resp, err := m.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(data))).Commit()
	m.observe(err)
	if err != nil {
		return fmt.Errorf("writing network config %s: %w", key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %s was written by someone else since it was read", ErrConfigChanged, key)
	}
	return nil
}

// Config reads and validates the network config at ConfigKey strictly (ParseConfig, with
// Options.FlannelCompat). A missing key gives an error wrapping ErrNoConfig; a bad value one wrapping
// subnet.ErrInvalidConfig.
func (m *Manager) Config(ctx context.Context) (*subnet.Config, error) {
	raw, _, err := m.RawConfig(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(raw, m.opts.FlannelCompat)
	if err != nil {
		return nil, fmt.Errorf("network config %s: %w", m.ConfigKey(), err)
	}
	return cfg, nil
}

// sharedConfig reads the network config as a weftd shares it with other weft versions: the fields
// this version does not know are ignored and returned.
func (m *Manager) sharedConfig(ctx context.Context) (*subnet.Config, []string, error) {
	raw, _, err := m.RawConfig(ctx)
	if err != nil {
		return nil, nil, err
	}
	cfg, unknown, err := subnet.ParseConfigLenient(raw)
	if err == nil {
		err = checkShared(cfg, m.opts.FlannelCompat)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("network config %s: %w", m.ConfigKey(), err)
	}
	return cfg, unknown, nil
}

// WaitConfig returns the network config, waiting for it while it is missing or invalid or etcd is
// unreachable, with backoff. It logs the key it waits for and why, once per distinct reason. The
// config is read as every weft version during a rolling upgrade shares it: fields this version does
// not know are logged as a warning and ignored.
func (m *Manager) WaitConfig(ctx context.Context) (*subnet.Config, error) {
	bo := m.newBackoff()
	var lastErr error
	giveUp := func() error {
		return fmt.Errorf("waiting for network config %s: %w (last error: %w)", m.ConfigKey(), ctx.Err(), lastErr)
	}
	for {
		rctx, cancel := m.reqCtx(ctx)
		cfg, unknown, err := m.sharedConfig(rctx)
		cancel()
		if err == nil {
			m.logFound(lastErr != nil, unknown)
			return cfg, nil
		}
		if ctx.Err() != nil {
			if lastErr == nil {
				lastErr = err
			}
			return nil, giveUp()
		}
		if lastErr == nil || err.Error() != lastErr.Error() {
			m.log.Warn("waiting for network config", "key", m.ConfigKey(), "reason", configErrReason(err), "err", err)
		}
		lastErr = err
		if !bo.Wait(ctx) {
			return nil, giveUp()
		}
	}
}

// logFound logs the config WaitConfig found: that it did after waiting, and the fields it ignored.
func (m *Manager) logFound(waited bool, unknown []string) {
	if waited {
		m.log.Info("network config found", "key", m.ConfigKey())
	}
	if len(unknown) > 0 {
		m.log.Warn("ignoring network config fields this weftd does not know (written for a newer weft?)",
			"key", m.ConfigKey(), "fields", slices.Clone(unknown))
	}
}

// configErrReason is why a config read failed, for the log.
func configErrReason(err error) string {
	switch {
	case errors.Is(err, ErrNoConfig):
		return "missing"
	case errors.Is(err, subnet.ErrInvalidConfig):
		return "invalid"
	}
	return "read failed"
}
