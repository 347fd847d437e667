package etcd

import (
	"context"
	"errors"
	"fmt"

	"github.com/weft-net/weft/subnet"
)

// Config reads and validates the network config at ConfigKey. A missing key gives an error wrapping
// ErrNoConfig; a bad value one wrapping subnet.ErrInvalidConfig. Under FlannelPrefix the config must
// also suit the flannel nodes sharing it (subnet.Config.ValidateFlannelShared).
func (m *Manager) Config(ctx context.Context) (*subnet.Config, error) {
	key := m.ConfigKey()
	resp, err := m.cli.Get(ctx, key)
	m.observe(err)
	if err != nil {
		return nil, fmt.Errorf("reading network config %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: key %s does not exist", ErrNoConfig, key)
	}
	cfg, err := subnet.ParseConfig(resp.Kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("network config %s: %w", key, err)
	}
	if m.opts.Prefix == FlannelPrefix {
		if err := cfg.ValidateFlannelShared(); err != nil {
			return nil, fmt.Errorf("network config %s: %w", key, err)
		}
	}
	return cfg, nil
}

// WaitConfig returns the network config, waiting for it while it is missing or invalid or etcd is
// unreachable, with backoff. It logs the key it waits for and why, once per distinct reason.
func (m *Manager) WaitConfig(ctx context.Context) (*subnet.Config, error) {
	bo := m.newBackoff()
	var lastErr error
	giveUp := func() error {
		return fmt.Errorf("waiting for network config %s: %w (last error: %w)", m.ConfigKey(), ctx.Err(), lastErr)
	}
	for {
		rctx, cancel := m.reqCtx(ctx)
		cfg, err := m.Config(rctx)
		cancel()
		if err == nil {
			if lastErr != nil {
				m.log.Info("network config found", "key", m.ConfigKey())
			}
			return cfg, nil
		}
		if ctx.Err() != nil {
			if lastErr == nil {
				lastErr = err
			}
			return nil, giveUp()
		}
		if lastErr == nil || err.Error() != lastErr.Error() {
			reason := "read failed"
			switch {
			case errors.Is(err, ErrNoConfig):
				reason = "missing"
			case errors.Is(err, subnet.ErrInvalidConfig):
				reason = "invalid"
			}
			m.log.Warn("waiting for network config", "key", m.ConfigKey(), "reason", reason, "err", err)
		}
		lastErr = err
		if !bo.Wait(ctx) {
			return nil, giveUp()
		}
	}
}
