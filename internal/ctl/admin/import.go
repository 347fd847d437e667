package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// importStep is one key leases import copies or leaves alone, in JSON and YAML output.
type importStep struct {
	// Action is copy or skip in a dry run, copied or skipped once applied.
	Action string `json:"action"`
	Key    string `json:"key"`
	From   string `json:"from"`
	Holder string `json:"holder,omitempty"`
	Detail string `json:"detail"`
}

func runLeasesImport(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
	var ef cli.EtcdFlags
	ef.Register(fs)
	from := fs.String("from", "", "prefix to copy from, e.g. "+weftetcd.FlannelPrefix+" (required)")
	apply := fs.Bool("apply", false, "write the copies (default: a dry run showing what would be copied)")
	out := cli.OutputFlag(fs)
	if _, err := cli.Parse(env, fs, args); err != nil {
		return err
	}
	switch {
	case *from == "":
		return fmt.Errorf("%w: -from: the prefix to copy from is required (flannel's is %s)", cli.ErrUsage, weftetcd.FlannelPrefix)
	case *from == ef.Prefix:
		return fmt.Errorf("%w: -from=%q is the -etcd-prefix the copies go to; give weft's prefix with -etcd-prefix", cli.ErrUsage, *from)
	}
	if err := cli.CheckPrefix("from", *from); err != nil {
		return err
	}
	s, err := ef.Open()
	if err != nil {
		return err
	}
	defer s.Close()
	steps, err := runImport(ctx, s, *from, *apply)
	if err != nil {
		return err
	}
	if out.Structured() {
		return out.Encode(env.Stdout, struct {
			From    string       `json:"from"`
			To      string       `json:"to"`
			Applied bool         `json:"applied"`
			Steps   []importStep `json:"steps"`
		}{*from, s.Prefix, *apply, steps})
	}
	return writeImport(env, steps, *from, s.Prefix, *apply)
}

// runImport plans the import from prefix from and, with apply, carries it out.
func runImport(ctx context.Context, s *cli.Session, from string, apply bool) ([]importStep, error) {
	var steps []weftetcd.ImportStep
	err := s.Do(ctx, func(ctx context.Context) (err error) {
		steps, err = s.M.PlanImport(ctx, from)
		return err
	})
	switch {
	case errors.Is(err, weftetcd.ErrNoConfig):
		return nil, fmt.Errorf("%w: %w", cli.ErrNotFound, err)
	case errors.Is(err, subnet.ErrInvalidConfig):
		return nil, fmt.Errorf("%w: %w", cli.ErrRefused, err)
	case err != nil:
		return nil, err
	}
	if apply {
		if err := s.Do(ctx, func(ctx context.Context) error { return s.M.ApplyImport(ctx, steps) }); err != nil {
			return nil, err
		}
	}
	out := make([]importStep, len(steps))
	for i, st := range steps {
		out[i] = importStep{Action: string(st.Action), Key: st.Key, From: st.From, Holder: st.Holder, Detail: st.Detail}
	}
	return out, nil
}

func writeImport(env *cli.Env, steps []importStep, from, to string, applied bool) error {
	t := cli.NewTable(env.Stdout, "ACTION", "KEY", "HOLDER", "DETAIL")
	copies := 0
	for _, st := range steps {
		t.Row(st.Action, st.Key, st.Holder, st.Detail)
		if st.Action == string(weftetcd.ImportCopy) || st.Action == string(weftetcd.ImportCopied) {
			copies++
		}
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if applied {
		fmt.Fprintf(env.Stdout, "Copied %d keys from %s to %s. Start weftd with -etcd-prefix %s on every node;\n"+
			"each node finds its subnet (by node name, or by public IP for flannel's values) and keeps it.\n", copies, from, to, to)
	} else {
		fmt.Fprintf(env.Stdout, "Dry run: %d keys would be copied, nothing was written. Run again with -apply to copy.\n", copies)
	}
	return nil
}
