package admin

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

func Config(ctx context.Context, env *cli.Env, args []string) error {
	return cli.RunGroup(ctx, env, "config", []cli.Subcommand{
		{Name: "get", Synopsis: "[flags]", Summary: "show the network config at <prefix>/config", Run: runConfigGet},
		{Name: "set", Synopsis: "FILE [-force] [flags]", Summary: "validate FILE as weftd does and store it (FILE - reads stdin)", Run: runConfigSet},
		{Name: "validate", Synopsis: "FILE [flags]", Summary: "validate FILE as weftd does, without etcd", Run: runConfigValidate},
	}, args)
}

// readConfigFile reads FILE, or stdin for "-".
func readConfigFile(env *cli.Env, name string) ([]byte, error) {
	if name == "-" {
		if env.Stdin == nil {
			return nil, fmt.Errorf("%w: FILE -: no standard input", cli.ErrUsage)
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
	return cli.Fields(w,
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

func writeConfig(w io.Writer, f cli.Format, cfg *subnet.Config) error {
	if f.Structured() {
		// flannel's format with every default spelled out, which config set accepts back.
		data, err := cfg.MarshalJSON()
		if err != nil {
			return err
		}
		return f.Encode(w, json.RawMessage(data))
	}
	return writeConfigFields(w, cfg)
}

func runConfigGet(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
	s, out, err := listCommand(env, fs, args)
	if err != nil {
		return err
	}
	defer s.Close()
	var raw []byte
	err = s.Do(ctx, func(ctx context.Context) error {
		raw, _, err = s.M.RawConfig(ctx)
		return err
	})
	if errors.Is(err, weftetcd.ErrNoConfig) {
		return fmt.Errorf("%w: no network config at %s (weftctl config set FILE stores one)", cli.ErrNotFound, s.M.ConfigKey())
	}
	if err != nil {
		return err
	}
	cfg, err := weftetcd.ParseConfig(raw, s.M.Options().FlannelCompat)
	if err != nil {
		fmt.Fprintf(env.Stdout, "%s\n", raw)
		return fmt.Errorf("the config at %s (above) is what weftd refuses: %w", s.M.ConfigKey(), err)
	}
	return writeConfig(env.Stdout, out, cfg)
}

func runConfigValidate(_ context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
	var pf cli.PrefixFlags
	pf.Register(fs)
	out := cli.OutputFlag(fs)
	pos, err := cli.Parse(env, fs, args, "FILE")
	if err != nil {
		return err
	}
	if err := cli.CheckPrefix("etcd-prefix", pf.Prefix); err != nil {
		return err
	}
	data, err := readConfigFile(env, pos[0])
	if err != nil {
		return err
	}
	cfg, err := weftetcd.ParseConfig(data, pf.FlannelCompat())
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if out.Structured() {
		return writeConfig(env.Stdout, *out, cfg)
	}
	fmt.Fprintf(env.Stdout, "%s: valid. With the defaults filled in:\n", pos[0])
	return writeConfigFields(env.Stdout, cfg)
}

func runConfigSet(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
	var ef cli.EtcdFlags
	ef.Register(fs)
	force := fs.Bool("force", false, "store the config even when it strands existing leases")
	pos, err := cli.Parse(env, fs, args, "FILE")
	if err != nil {
		return err
	}
	if err := cli.CheckPrefix("etcd-prefix", ef.Prefix); err != nil {
		return err
	}
	data, err := readConfigFile(env, pos[0])
	if err != nil {
		return err
	}
	cfg, err := weftetcd.ParseConfig(data, ef.FlannelCompat())
	if err != nil {
		return fmt.Errorf("%w: %s: %w", cli.ErrRefused, pos[0], err)
	}
	s, err := ef.Open()
	if err != nil {
		return err
	}
	defer s.Close()
	return storeConfig(ctx, s, env, pos[0], data, cfg, *force)
}

// currentConfig is the config stored now: its revision (0 when there is none) and the config, nil
// when there is none or it does not parse.
func currentConfig(ctx context.Context, s *cli.Session) (*subnet.Config, int64, error) {
	var raw []byte
	var rev int64
	err := s.Do(ctx, func(ctx context.Context) (err error) {
		raw, rev, err = s.M.RawConfig(ctx)
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
func storeConfig(ctx context.Context, s *cli.Session, env *cli.Env, file string, data []byte, cfg *subnet.Config, force bool) error {
	old, rev, err := currentConfig(ctx, s)
	if err != nil {
		return err
	}
	if old != nil && *old == *cfg {
		fmt.Fprintf(env.Stdout, "%s already holds this config: nothing to do.\n", s.M.ConfigKey())
		return nil
	}
	entries, _, err := ReadKeys(ctx, s)
	if err != nil {
		return err
	}
	if err := checkStranded(env, file, cfg, entries, force); err != nil {
		return err
	}
	if old != nil && (old.Backend != cfg.Backend) {
		fmt.Fprintln(env.Stderr, "note: the Backend changed; running nodes use it only after weftd restarts on every node.")
	}
	err = s.Do(ctx, func(ctx context.Context) error { return s.M.StoreConfig(ctx, data, rev) })
	if errors.Is(err, weftetcd.ErrConfigChanged) {
		return fmt.Errorf("%w while weftctl checked the new config: not stored; run config set again", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Stored the config at %s: network %s, /%d subnets, VNI %d.\n", s.M.ConfigKey(), cfg.Network, cfg.SubnetLen, cfg.Backend.VNI)
	return nil
}

// checkStranded refuses, unless forced, a config that the existing keys do not fit, and notes the
// keys it no longer hands out.
func checkStranded(env *cli.Env, file string, cfg *subnet.Config, entries []Entry, force bool) error {
	var stranded []Entry
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
			fmt.Fprintf(w, "  %s (%s)\n", e.Subnet, e.Holder())
		}
		if !force {
			return fmt.Errorf("%w: %s not stored; move those nodes first, or pass -force", cli.ErrRefused, file)
		}
		fmt.Fprintln(w, "-force: storing it anyway.")
	}
	if outside > 0 {
		fmt.Fprintf(env.Stderr, "note: %d keys lie outside SubnetMin..SubnetMax; their nodes keep them, but they are never handed out again.\n", outside)
	}
	return nil
}
