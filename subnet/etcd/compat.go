package etcd

import (
	"flag"
	"fmt"
	"strconv"
)

// FlannelCompatFlagName is the flag that says whether flannel nodes share the prefix.
const FlannelCompatFlagName = "flannel-compat"

// FlannelCompatFlag is the -flannel-compat flag of weftd and weftctl. Given (on the command line or
// as WEFT_FLANNEL_COMPAT), it says whether flannel nodes share the prefix; not given, they are
// assumed to exactly when the prefix is FlannelPrefix. Resolve gives Options.FlannelCompat.
type FlannelCompatFlag struct {
	set, on bool
}

// RegisterFlannelCompatFlag registers -flannel-compat on fs.
func RegisterFlannelCompatFlag(fs *flag.FlagSet) *FlannelCompatFlag {
	f := &FlannelCompatFlag{}
	fs.Var(f, FlannelCompatFlagName, "flannel nodes share the etcd prefix: keep the network config readable by them "+
		"(default: on when -etcd-prefix is "+FlannelPrefix+", else off)")
	return f
}

// Resolve returns whether flannel nodes share prefix: the flag's value if it was given, else
// whether prefix is FlannelPrefix.
func (f *FlannelCompatFlag) Resolve(prefix string) bool {
	if f.set {
		return f.on
	}
	return prefix == FlannelPrefix
}

// String implements flag.Value; it is empty while the flag is not given.
func (f *FlannelCompatFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.FormatBool(f.on)
}

// Set implements flag.Value.
func (f *FlannelCompatFlag) Set(s string) error {
	on, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q: want true or false", s)
	}
	f.set, f.on = true, on
	return nil
}

// IsBoolFlag lets the flag be given without a value: -flannel-compat means -flannel-compat=true.
func (f *FlannelCompatFlag) IsBoolFlag() bool { return true }
