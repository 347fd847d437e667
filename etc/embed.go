// Package etc ships weft's deployment samples (the CNI conflist, the network config, the DaemonSet,
// the systemd unit) and embeds the ones the binaries need.
package etc

import _ "embed"

// Conflist is the shipped CNI conflist, 10-weft.conflist: weft followed by portmap.
//
//go:embed 10-weft.conflist
var Conflist []byte
