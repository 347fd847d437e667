package vxlan

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/weft-net/weft/internal/atomicfile"
	"github.com/weft-net/weft/subnet"
)

// ErrBadMACFile marks a persisted VTEP MAC file that cannot be used.
var ErrBadMACFile = errors.New("bad VTEP MAC file")

// macFile is where the VTEP MAC of device is persisted.
func macFile(stateDir, device string) string {
	return filepath.Join(stateDir, device+".mac")
}

// vtepMAC returns the MAC the device must carry: the persisted one if stateDir holds it, else one
// derived from nodeName and vni, else a random one. A MAC that was not read from stateDir is
// written there (when stateDir is set), so it survives restarts and renames of the node.
func vtepMAC(stateDir, device, nodeName string, vni int) (net.HardwareAddr, error) {
	if stateDir != "" {
		path := macFile(stateDir, device)
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			mac, err := parseMACFile(data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return mac, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("read VTEP MAC: %w", err)
		}
	}
	var mac net.HardwareAddr
	if nodeName != "" {
		mac = deriveMAC(nodeName, vni)
	} else {
		var err error
		if mac, err = randomMAC(); err != nil {
			return nil, err
		}
	}
	if stateDir != "" {
		if err := writeMACFile(macFile(stateDir, device), mac); err != nil {
			return nil, err
		}
	}
	return mac, nil
}

// deriveMAC derives a locally administered unicast MAC from the node name and VNI.
func deriveMAC(nodeName string, vni int) net.HardwareAddr {
	sum := sha256.Sum256([]byte("weft-vtep\x00" + nodeName + "\x00" + strconv.Itoa(vni)))
	return localUnicast(sum[:6])
}

func randomMAC() (net.HardwareAddr, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random VTEP MAC: %w", err)
	}
	return localUnicast(b), nil
}

// localUnicast sets the locally-administered bit and clears the multicast bit of b[0].
func localUnicast(b []byte) net.HardwareAddr {
	mac := net.HardwareAddr(append([]byte(nil), b[:6]...))
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

// parseMACFile parses the persisted MAC: one EUI-48 in colon notation, optionally followed by a
// newline. The MAC must be a usable unicast address.
func parseMACFile(data []byte) (net.HardwareAddr, error) {
	s := strings.TrimSuffix(string(data), "\n")
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadMACFile, s, err)
	}
	if err := subnet.CheckVtepMAC(mac); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMACFile, err)
	}
	return mac, nil
}

// writeMACFile persists mac atomically.
func writeMACFile(path string, mac net.HardwareAddr) error {
	if err := atomicfile.Write(path, []byte(mac.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("persist VTEP MAC: %w", err)
	}
	return nil
}
