package vxlan

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Legacy ethtool commands for the tx checksum feature group (linux/ethtool.h). The kernel maps
// them onto NETIF_F_CSUM_MASK, i.e. ethtool's tx-checksum-* features.
const (
	ethtoolGTXCSUM = 0x16
	ethtoolSTXCSUM = 0x17
)

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member of the union, padded to sizeof(struct ifreq).
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// wantTxChecksum resolves a TxChecksumOffload mode for the running kernel release. Kernels before
// 5.7 corrupt checksums of VXLAN packets rewritten by MASQUERADE --random-fully when the inner
// checksum is offloaded (traffic stalls for about 63 s), so "auto" turns offload off there and
// leaves it on everywhere else (turning it off also disables TSO/GSO on the device).
func wantTxChecksum(mode, release string) (bool, error) {
	switch mode {
	case TxChecksumOn:
		return true, nil
	case TxChecksumOff:
		return false, nil
	}
	major, minor, err := parseKernelRelease(release)
	if err != nil {
		return false, err
	}
	return major > 5 || (major == 5 && minor >= 7), nil
}

// ErrKernelRelease marks a kernel release string that does not start with <major>.<minor>.
var ErrKernelRelease = errors.New("unparsable kernel release")

// parseKernelRelease extracts major and minor from a uname release such as "5.4.0-150-generic".
func parseKernelRelease(release string) (major, minor int, err error) {
	majorStr, rest, ok := strings.Cut(release, ".")
	if !ok {
		return 0, 0, fmt.Errorf("%w: %q", ErrKernelRelease, release)
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	major, err1 := strconv.Atoi(majorStr)
	minor, err2 := strconv.Atoi(rest[:end])
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return 0, 0, fmt.Errorf("%w: %q", ErrKernelRelease, release)
	}
	return major, minor, nil
}

func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// setTxChecksum makes the tx checksum offload of link device in the network namespace nsh match
// want. The ethtool ioctl acts on the namespace of the socket it is issued on, so the socket is
// created inside nsh — directly when nsh is the caller's own namespace (the daemon's case: entering
// a namespace needs CAP_SYS_ADMIN, which weftd does not otherwise need).
func setTxChecksum(nsh netns.NsHandle, device string, want bool) error {
	fd, err := socketIn(nsh)
	if err != nil {
		return fmt.Errorf("tx checksum offload: socket: %w", err)
	}
	defer unix.Close(fd)
	on, err := ethtoolValueIoctl(fd, device, ethtoolGTXCSUM, 0)
	if err != nil {
		return fmt.Errorf("tx checksum offload of %s: get: %w", device, err)
	}
	if (on != 0) == want {
		return nil
	}
	var data uint32
	if want {
		data = 1
	}
	if _, err := ethtoolValueIoctl(fd, device, ethtoolSTXCSUM, data); err != nil {
		return fmt.Errorf("tx checksum offload of %s: set %t: %w", device, want, err)
	}
	return nil
}

// socketIn opens a datagram socket in the network namespace nsh.
func socketIn(nsh netns.NsHandle) (int, error) {
	open := func() (int, error) { return unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0) }
	if cur, err := netns.Get(); err == nil {
		same := cur.Equal(nsh)
		cur.Close()
		if same {
			return open()
		}
	}
	target, err := ns.GetNS(fmt.Sprintf("/proc/self/fd/%d", int(nsh)))
	if err != nil {
		return -1, fmt.Errorf("open netns: %w", err)
	}
	defer target.Close()
	fd := -1
	err = target.Do(func(ns.NetNS) error {
		var err error
		fd, err = open()
		return err
	})
	return fd, err
}

// ethtoolValueIoctl issues SIOCETHTOOL with a struct ethtool_value and returns its data.
func ethtoolValueIoctl(fd int, device string, cmd, data uint32) (uint32, error) {
	val := &ethtoolValue{cmd: cmd, data: data}
	req := &ifreqData{data: unsafe.Pointer(val)}
	copy(req.name[:unix.IFNAMSIZ-1], device)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(req)))
	runtime.KeepAlive(req)
	runtime.KeepAlive(val)
	if errno != 0 {
		return 0, errno
	}
	return val.data, nil
}
