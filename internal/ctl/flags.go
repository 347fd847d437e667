package ctl

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"

	"github.com/weft-net/weft/internal/flagenv"
)

// newFlags returns the flag set of "weftctl name", whose usage shows synopsis.
func newFlags(env *Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("weftctl "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: weftctl %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// noEnv are the flags that only the command line sets: a variable left in the environment must
// never confirm or force a write.
var noEnv = map[string]bool{flagenv.Name("yes"): true, flagenv.Name("apply"): true, flagenv.Name("force"): true}

// parse parses args into fs, where flags may also follow the positional arguments, fills the flags
// not given from their WEFT_* environment variables, and checks that the positional arguments are
// exactly the ones named.
func parse(env *Env, fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	getenv := func(k string) string {
		if noEnv[k] {
			return ""
		}
		return env.Getenv(k)
	}
	if err := flagenv.Parse(fs, nil, getenv); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	switch {
	case len(pos) > len(names):
		return nil, fmt.Errorf("%w: %s: unexpected argument %q", ErrUsage, fs.Name(), pos[len(names)])
	case len(pos) < len(names):
		return nil, fmt.Errorf("%w: %s: missing %s", ErrUsage, fs.Name(), strings.Join(names[len(pos):], " "))
	}
	return pos, nil
}

// format is an output format: -o table (the default), wide, json or yaml.
type format string

const (
	formatTable format = "table"
	formatWide  format = "wide"
	formatJSON  format = "json"
	formatYAML  format = "yaml"
)

func (f *format) String() string { return string(*f) }

func (f *format) Set(s string) error {
	switch v := format(s); v {
	case formatTable, formatWide, formatJSON, formatYAML:
		*f = v
		return nil
	}
	return fmt.Errorf("%q: want table, wide, json or yaml", s)
}

// outputFlag registers -o and returns the format it sets.
func outputFlag(fs *flag.FlagSet) *format {
	f := formatTable
	fs.Var(&f, "o", "output `format`: table, wide, json or yaml")
	return &f
}

// structured reports whether f is a machine-readable format.
func (f format) structured() bool { return f == formatJSON || f == formatYAML }

// encode writes v as JSON (indented) or YAML.
func (f format) encode(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	data := b.Bytes()
	if f == formatYAML {
		var err error
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
	}
	_, err := w.Write(data)
	return err
}

// table writes aligned columns; an empty cell shows as "-".
type table struct {
	tw   *tabwriter.Writer
	cols int
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0), cols: len(header)}
	fmt.Fprintln(t.tw, strings.Join(header, "\t"))
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// note writes text under the last row, in the last column.
func (t *table) note(text string) {
	fmt.Fprintln(t.tw, strings.Repeat("\t", t.cols-1)+text)
}

func (t *table) flush() error { return t.tw.Flush() }

// fields writes "Name:  value" lines, aligned; empty values show as "-".
func fields(w io.Writer, kv ...string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s:\t%s\n", kv[i], v)
	}
	return tw.Flush()
}
