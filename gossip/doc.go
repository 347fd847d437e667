// Package gossip runs weft's memberlist cluster among the nodes.
//
//   - Meta is what a node advertises about itself in its memberlist meta: name, subnet, public IP,
//     VTEP MAC, VNI and the AttrVersion of its lease attributes, in a compact, versioned binary
//     form, signed with the node's Ed25519 key (LoadNodeKey) over everything it asserts and the
//     gossip address it announces.
//   - Member runs the memberlist instance: encryption keyring loaded from a key file and rotated by
//     ReloadKeys, cluster label, background joins to the gossip addresses found in etcd, admission
//     of every alive message through an Admitter, and member events handed to an Observer.
//
// Package peerview is both the Observer and the Admitter in weftd: it decides, from etcd's leases,
// which members are let in and which claims are believed. See docs/gossip.md.
//
// The package imports neither the etcd client nor prometheus; Member.Stats returns snapshots that
// the daemon exports as metrics.
package gossip

import "errors"

// Sentinel errors. Every error this package returns for bad input wraps one of them and names the
// field and the value at fault.
var (
	// ErrInvalidConfig marks a Config or ViewConfig that does not validate.
	ErrInvalidConfig = errors.New("invalid gossip config")
	// ErrInvalidMeta marks member meta that does not encode, parse or validate.
	ErrInvalidMeta = errors.New("invalid gossip meta")
	// ErrMetaVersion marks meta written in a format version this weft cannot read. It is always
	// returned together with ErrInvalidMeta.
	ErrMetaVersion = errors.New("unsupported gossip meta version")
	// ErrInvalidKeyFile marks a key file that cannot be read or holds a bad key.
	ErrInvalidKeyFile = errors.New("invalid gossip key file")
	// ErrNoKeyFile is returned by Member.ReloadKeys when the member runs without a key file.
	ErrNoKeyFile = errors.New("no gossip key file configured")
	// ErrInvalidNodeKey marks a node key file that cannot be read, written or parsed.
	ErrInvalidNodeKey = errors.New("invalid node key file")
	// ErrBadSignature marks a meta whose signature does not verify with the node's key.
	ErrBadSignature = errors.New("bad gossip meta signature")
	// ErrRefused marks a member refused at admission (see Admitter).
	ErrRefused = errors.New("gossip member refused")
	// ErrStarted is returned by Member.Run when the member was already run once.
	ErrStarted = errors.New("gossip member already started")
)
