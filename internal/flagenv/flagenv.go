// Package flagenv lets every flag of a weft binary be given as a WEFT_* environment variable: flag
// "etcd-endpoints" reads WEFT_ETCD_ENDPOINTS. A flag given on the command line wins.
package flagenv

import (
	"flag"
	"fmt"
	"strings"
)

// Prefix is the one environment prefix of every weft program with flags: weftd, weftctl, weft-demo
// and weft-bench. (The CNI plugin has no flags: its config comes on stdin, as the CNI spec says.)
const Prefix = "WEFT_"

// Name returns the environment variable that sets the named flag.
func Name(flagName string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then fills every flag not given on the command line from its
// environment variable, looked up with getenv. Errors name the flag and the variable.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		env := Name(f.Name)
		v := getenv(env)
		if v == "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("invalid value %q for %s (flag -%s): %w", v, env, f.Name, e)
		}
	})
	return err
}

// SplitList splits a comma-separated flag value into its non-empty, trimmed items.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
