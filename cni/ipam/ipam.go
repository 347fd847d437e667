// Package ipam hands out pod addresses from a node subnet and keeps them on disk, in the layout of
// host-local's store: a directory with one file per allocated address, named after the address and
// holding "containerID\nifname", and a last_reserved_ip file that makes allocation round-robin.
// A Store holds an exclusive flock(2) on the directory from Open to Close, so concurrent plugin
// processes take turns.
package ipam

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Sentinel errors.
var (
	// ErrExhausted means every usable address of the subnet is allocated.
	ErrExhausted = errors.New("no free address")
	// ErrInvalidSubnet marks a subnet the store cannot allocate from.
	ErrInvalidSubnet = errors.New("invalid subnet")
)

const (
	lockFile = "lock"
	lastFile = "last_reserved_ip"
	// attachStripes is how many attachment locks there are.
	attachStripes = 64
)

// AttachmentLocks is the store's directory of attachment locks (see LockContainer): a fixed set of
// files that stays, whatever pods come and go.
const AttachmentLocks = "attachment-locks"

// Attachment identifies the owner of an address: a container's interface.
type Attachment struct {
	ContainerID string
	IfName      string
}

// Allocation is one allocated address and its owner. The owner of a file the store cannot read
// back (cut short by a crash) is the zero Attachment.
type Allocation struct {
	Addr netip.Addr
	Attachment
}

// Store is a locked IPAM directory. It is not safe for concurrent use by goroutines; other
// processes (and other Stores) wait in Open until Close.
type Store struct {
	dir  string
	lock *os.File
}

// Open creates dir when missing, and locks it.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	f, err := lock(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, err
	}
	return &Store{dir: dir, lock: f}, nil
}

// LockContainer takes the lock of containerID's attachments in the store at dir and returns it
// held; closing the file releases it. ADD, DEL and CHECK of one container hold it from start to
// end, so that they never interleave (a DEL racing an ADD would free the address ADD hands out).
// Containers share one of a fixed number of lock files, chosen by a hash of the ID, so lock files
// never need deleting: two containers that share one merely take turns.
func LockContainer(dir, containerID string) (*os.File, error) {
	locks := filepath.Join(dir, AttachmentLocks)
	if err := os.MkdirAll(locks, 0o700); err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	h := fnv.New32a()
	h.Write([]byte(containerID))
	return lock(filepath.Join(locks, fmt.Sprintf("%02d", h.Sum32()%attachStripes)))
}

// lock opens path, creating it, and takes an exclusive flock(2) on it.
func lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ipam: lock %s: %w", path, err)
	}
	return f, nil
}

// Close releases the lock.
func (s *Store) Close() error { return s.lock.Close() }

// List returns every allocation, ordered by address.
func (s *Store) List() ([]Allocation, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	var out []Allocation
	for _, e := range entries {
		addr, err := netip.ParseAddr(e.Name())
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ipam: %w", err)
		}
		out = append(out, Allocation{Addr: addr, Attachment: parseOwner(data)})
	}
	slices.SortFunc(out, func(a, b Allocation) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}

func parseOwner(data []byte) Attachment {
	id, ifName, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	return Attachment{ContainerID: strings.TrimSpace(id), IfName: strings.TrimSpace(ifName)}
}

// Get returns the address allocated to a, if any.
func (s *Store) Get(a Attachment) (netip.Addr, bool, error) {
	allocs, err := s.List()
	if err != nil {
		return netip.Addr{}, false, err
	}
	for _, al := range allocs {
		if al.Attachment == a {
			return al.Addr, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// Allocate returns the address of a in subnet, allocating one when a has none: the first free
// address after the last one reserved, wrapping around, never the network address, the gateway
// (the first host address) or the broadcast address. fresh tells whether the address is new. An
// address a holds outside subnet (the node's subnet changed) is released.
func (s *Store) Allocate(a Attachment, subnet netip.Prefix) (addr netip.Addr, fresh bool, err error) {
	if !subnet.Addr().Is4() || subnet.Bits() > 30 || subnet != subnet.Masked() {
		return netip.Addr{}, false, fmt.Errorf("%w: %s: need a masked IPv4 prefix of /30 or larger", ErrInvalidSubnet, subnet)
	}
	allocs, err := s.List()
	if err != nil {
		return netip.Addr{}, false, err
	}
	base := toU32(subnet.Addr())
	first, last := base+2, uint32(uint64(base)+uint64(1)<<(32-subnet.Bits())-2)
	used := make(map[netip.Addr]bool, len(allocs))
	for _, al := range allocs {
		if al.Attachment != a {
			used[al.Addr] = true
			continue
		}
		if n := toU32(al.Addr); al.Addr.Is4() && n >= first && n <= last {
			return al.Addr, false, nil
		}
		if err := s.remove(al.Addr); err != nil {
			return netip.Addr{}, false, err
		}
	}
	start := first
	if lr, ok := s.lastReserved(); ok {
		if n := toU32(lr); n >= first && n < last {
			start = n + 1
		}
	}
	size := last - first + 1
	for i := range size {
		cand := fromU32(first + (start-first+i)%size)
		if used[cand] {
			continue
		}
		ok, err := s.create(cand, a)
		if err != nil {
			return netip.Addr{}, false, err
		}
		if ok {
			if err := os.WriteFile(filepath.Join(s.dir, lastFile), []byte(cand.String()), 0o600); err != nil {
				return netip.Addr{}, false, fmt.Errorf("ipam: %w", err)
			}
			return cand, true, nil
		}
	}
	return netip.Addr{}, false, fmt.Errorf("%w in %s: all %d addresses are allocated", ErrExhausted, subnet, size)
}

// create writes the allocation file of addr, reporting false when it exists already.
func (s *Store) create(addr netip.Addr, a Attachment) (bool, error) {
	path := filepath.Join(s.dir, addr.String())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ipam: %w", err)
	}
	_, err = f.WriteString(a.ContainerID + "\n" + a.IfName)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return false, fmt.Errorf("ipam: %w", err)
	}
	return true, nil
}

func (s *Store) lastReserved() (netip.Addr, bool) {
	data, err := os.ReadFile(filepath.Join(s.dir, lastFile))
	if err != nil {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(string(data)))
	return addr, err == nil && addr.Is4()
}

func (s *Store) remove(addr netip.Addr) error {
	if err := os.Remove(filepath.Join(s.dir, addr.String())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}

// Release frees every address of a and returns them. Releasing what a does not hold is no error.
func (s *Store) Release(a Attachment) ([]netip.Addr, error) {
	removed, err := s.removeIf(func(al Allocation) bool { return al.Attachment == a })
	addrs := make([]netip.Addr, len(removed))
	for i, al := range removed {
		addrs[i] = al.Addr
	}
	return addrs, err
}

// Retain frees every allocation whose owner keep rejects, and returns them.
func (s *Store) Retain(keep func(Attachment) bool) ([]Allocation, error) {
	return s.removeIf(func(al Allocation) bool { return !keep(al.Attachment) })
}

func (s *Store) removeIf(match func(Allocation) bool) ([]Allocation, error) {
	allocs, err := s.List()
	if err != nil {
		return nil, err
	}
	var removed []Allocation
	var errs []error
	for _, al := range allocs {
		if !match(al) {
			continue
		}
		if err := s.remove(al.Addr); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, al)
	}
	return removed, errors.Join(errs...)
}

func toU32(a netip.Addr) uint32 {
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func fromU32(n uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b)
}
