// Package subnet holds weft's cluster network configuration, the lease model shared with flannel's
// etcd layout, and the subnet.env codec. It imports only the standard library: the CNI plugin links it.
package subnet

import "errors"

// Sentinel errors. Every error this package returns for bad input wraps one of them and names the
// field and the value at fault.
var (
	// ErrInvalidConfig marks a network config that does not parse or validate.
	ErrInvalidConfig = errors.New("invalid network config")
	// ErrUnsupported marks a config value that asks for a feature weft does not implement.
	ErrUnsupported = errors.New("unsupported")
	// ErrInvalidLease marks a lease key or value that does not parse or validate.
	ErrInvalidLease = errors.New("invalid lease")
	// ErrInvalidEnv marks a subnet.env file that does not parse or validate.
	ErrInvalidEnv = errors.New("invalid subnet.env")
)
