package cli

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

// NewFlags returns the flag set of "weftctl name", whose usage shows synopsis.
func NewFlags(env *Env, name, synopsis string) *flag.FlagSet {
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

// Parse parses args into fs, where flags may also follow the positional arguments, fills the flags
// not given from their WEFT_* environment variables, and checks that the positional arguments are
// exactly the ones named.
func Parse(env *Env, fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
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

// Format is an output format: -o table (the default), wide, json or yaml.
type Format string

const (
	FormatTable Format = "table"
	FormatWide  Format = "wide"
	FormatJSON  Format = "json"
	FormatYAML  Format = "yaml"
)

func (f *Format) String() string { return string(*f) }

func (f *Format) Set(s string) error {
	switch v := Format(s); v {
	case FormatTable, FormatWide, FormatJSON, FormatYAML:
		*f = v
		return nil
	}
	return fmt.Errorf("%q: want table, wide, json or yaml", s)
}

// OutputFlag registers -o and returns the format it sets.
func OutputFlag(fs *flag.FlagSet) *Format {
	f := FormatTable
	fs.Var(&f, "o", "output `format`: table, wide, json or yaml")
	return &f
}

// Structured reports whether f is a machine-readable format.
func (f Format) Structured() bool { return f == FormatJSON || f == FormatYAML }

// Encode writes v as JSON (indented) or YAML.
func (f Format) Encode(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	data := b.Bytes()
	if f == FormatYAML {
		var err error
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
	}
	_, err := w.Write(data)
	return err
}

// Table writes aligned columns; an empty cell shows as "-".
type Table struct {
	tw   *tabwriter.Writer
	cols int
}

// NewTable starts a table with its header row.
func NewTable(w io.Writer, header ...string) *Table {
	t := &Table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0), cols: len(header)}
	fmt.Fprintln(t.tw, strings.Join(header, "\t"))
	return t
}

// Row writes a row.
func (t *Table) Row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// Note writes text under the last row, in the last column.
func (t *Table) Note(text string) {
	fmt.Fprintln(t.tw, strings.Repeat("\t", t.cols-1)+text)
}

// Flush writes the table out.
func (t *Table) Flush() error { return t.tw.Flush() }

// Fields writes "Name:  value" lines, aligned; empty values show as "-".
func Fields(w io.Writer, kv ...string) error {
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
