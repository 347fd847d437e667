package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

func runConfig(ctx context.Context, env *Env, args []string) error {
	return runGroup(ctx, env, "config", []subcommand{
		{"get", "[flags]", "show the network config at <prefix>/config", runConfigGet},
		{"set", "FILE [-force] [flags]", "validate FILE as weftd does and store it (FILE - reads stdin)", runConfigSet},
		{"validate", "FILE [flags]", "validate FILE as weftd does, without etcd", runConfigValidate},
	}, args)
}

// readConfigFile reads FILE, or stdin for "-".
func readConfigFile(env *Env, name string) ([]byte, error) {
	if name == "-" {
		if env.Stdin == nil {
			return nil, fmt.Errorf("%w: FILE -: no standard input", ErrUsage)
		}
		return io.ReadAll(env.Stdin)
	}
	return os.ReadFile(name)
}

func writeConfigFields(w io.Writer, cfg *subnet.Config) error {
	b := cfg.Backend
	mtu := "0 (underlay MTU - 50)"
	if b.MTU != 0 {
		mtu = fmt.Sprint(b.MTU)
	}
	return fields(w,
		"Network", cfg.Network.String(),
		"SubnetLen", fmt.Sprint(cfg.SubnetLen),
		"SubnetMin", cfg.SubnetMin.String(),
		"SubnetMax", cfg.SubnetMax.String(),
		"Subnets", fmt.Sprintf("%d allocatable", cfg.SubnetCount()),
		"Backend.Type", b.Type,
		"Backend.VNI", fmt.Sprint(b.VNI),
		"Backend.Port", fmt.Sprint(b.Port),
		"Backend.MTU", mtu,
		"Backend.DirectRouting", fmt.Sprint(b.DirectRouting),
		"Backend.GBP", fmt.Sprint(b.GBP),
		"Backend.Learning", fmt.Sprint(b.Learning),
	)
}

func writeConfig(w io.Writer, f format, cfg *subnet.Config) error {
	if f.structured() {
		// flannel's format with every default spelled out, which config set accepts back.
		data, err := cfg.MarshalJSON()
		if err != nil {
			return err
		}
		return f.encode(w, json.RawMessage(data))
	}
	return writeConfigFields(w, cfg)
}

func runConfigGet(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	var ef etcdFlags
	ef.register(fs)
	out := outputFlag(fs)
	s, err := openCommand(env, fs, &ef, args)
	if err != nil {
		return err
	}
	defer s.close()
	var raw []byte
	err = s.do(ctx, func(ctx context.Context) error {
		raw, _, err = s.m.RawConfig(ctx)
		return err
	})
	if errors.Is(err, weftetcd.ErrNoConfig) {
		return fmt.Errorf("%w: no network config at %s (weftctl config set FILE stores one)", ErrNotFound, s.m.ConfigKey())
	}
	if err != nil {
		return err
	}
	cfg, err := weftetcd.ParseConfig(raw, ef.flannelCompat())
	if err != nil {
		fmt.Fprintf(env.Stdout, "%s\n", raw)
		return fmt.Errorf("the config at %s (above) is what weftd refuses: %w", s.m.ConfigKey(), err)
	}
	return writeConfig(env.Stdout, *out, cfg)
}

func runConfigValidate(_ context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	var pf prefixFlags
	pf.register(fs)
	out := outputFlag(fs)
	pos, err := parse(env, fs, args, "FILE")
	if err != nil {
		return err
	}
	if err := checkPrefix("etcd-prefix", pf.prefix); err != nil {
		return err
	}
	data, err := readConfigFile(env, pos[0])
	if err != nil {
		return err
	}
	cfg, err := weftetcd.ParseConfig(data, pf.flannelCompat())
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if out.structured() {
		return writeConfig(env.Stdout, *out, cfg)
	}
	fmt.Fprintf(env.Stdout, "%s: valid. With the defaults filled in:\n", pos[0])
	return writeConfigFields(env.Stdout, cfg)
}

func runConfigSet(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	var ef etcdFlags
	ef.register(fs)
	force := fs.Bool("force", false, "store the config even when it strands existing leases")
	pos, err := parse(env, fs, args, "FILE")
	if err != nil {
		return err
	}
	if err := checkPrefix("etcd-prefix", ef.prefix); err != nil {
		return err
	}
	data, err := readConfigFile(env, pos[0])
	if err != nil {
		return err
	}
	cfg, err := weftetcd.ParseConfig(data, ef.flannelCompat())
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrRefused, pos[0], err)
	}
	s, err := ef.open()
	if err != nil {
		return err
	}
	defer s.close()
	return s.storeConfig(ctx, env, pos[0], data, cfg, *force)
}

// currentConfig is the config stored now: its revision (0 when there is none) and the config, nil
// when there is none or it does not parse.
func (s *session) currentConfig(ctx context.Context) (*subnet.Config, int64, error) {
	var raw []byte
	var rev int64
	err := s.do(ctx, func(ctx context.Context) (err error) {
		raw, rev, err = s.m.RawConfig(ctx)
		return err
	})
	switch {
	case errors.Is(err, weftetcd.ErrNoConfig):
		return nil, 0, nil
	case err != nil:
		return nil, 0, err
	}
	old, err := subnet.ParseConfig(raw)
	if err != nil {
		return nil, rev, nil
	}
	return old, rev, nil
}

// storeConfig stores data, which parses as cfg, unless it is already stored or strands existing
// keys (without force); it is written only if the key did not change since it was read.
func (s *session) storeConfig(ctx context.Context, env *Env, file string, data []byte, cfg *subnet.Config, force bool) error {
	old, rev, err := s.currentConfig(ctx)
	if err != nil {
		return err
	}
	if old != nil && *old == *cfg {
		fmt.Fprintf(env.Stdout, "%s already holds this config: nothing to do.\n", s.m.ConfigKey())
		return nil
	}
	entries, _, err := s.readKeys(ctx)
	if err != nil {
		return err
	}
	if err := checkStranded(env, file, cfg, entries, force); err != nil {
		return err
	}
	if old != nil && (old.Backend != cfg.Backend) {
		fmt.Fprintln(env.Stderr, "note: the Backend changed; running nodes use it only after weftd restarts on every node.")
	}
	err = s.do(ctx, func(ctx context.Context) error { return s.m.StoreConfig(ctx, data, rev) })
	if errors.Is(err, weftetcd.ErrConfigChanged) {
		return fmt.Errorf("%w while weftctl checked the new config: not stored; run config set again", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Stored the config at %s: network %s, /%d subnets, VNI %d.\n", s.m.ConfigKey(), cfg.Network, cfg.SubnetLen, cfg.Backend.VNI)
	return nil
}

// checkStranded refuses, unless forced, a config that the existing keys do not fit, and notes the
// keys it no longer hands out.
func checkStranded(env *Env, file string, cfg *subnet.Config, entries []keyEntry, force bool) error {
	var stranded []keyEntry
	outside := 0
	for _, e := range entries {
		switch {
		case !e.Subnet.IsValid():
		case !cfg.Covers(e.Subnet):
			stranded = append(stranded, e)
		case !cfg.Allocatable(e.Subnet):
			outside++
		}
	}
	if len(stranded) > 0 {
		w := env.Stderr
		fmt.Fprintf(w, "The new config strands %d existing keys: they are not /%d subnets of %s, so their nodes lose them:\n", len(stranded), cfg.SubnetLen, cfg.Network)
		for _, e := range stranded {
			fmt.Fprintf(w, "  %s (%s)\n", e.Subnet, e.holder())
		}
		if !force {
			return fmt.Errorf("%w: %s not stored; move those nodes first, or pass -force", ErrRefused, file)
		}
		fmt.Fprintln(w, "-force: storing it anyway.")
	}
	if outside > 0 {
		fmt.Fprintf(env.Stderr, "note: %d keys lie outside SubnetMin..SubnetMax; their nodes keep them, but they are never handed out again.\n", outside)
	}
	return nil
}
