package etcd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/weft-net/weft/internal/atomicfile"
	"github.com/weft-net/weft/subnet"
)

// localState is the content of the local state file: what this node held last, so that a restarted
// node asks for the same subnet and keeps alive the same etcd lease.
type localState struct {
	NodeName  string       `json:"NodeName"`
	Prefix    string       `json:"Prefix"`
	Subnet    netip.Prefix `json:"Subnet"`
	EtcdLease int64        `json:"EtcdLease"`
}

func (m *Manager) statePath() string {
	if m.opts.StateDir == "" {
		return ""
	}
	return filepath.Join(m.opts.StateDir, StateFileName)
}

// readState returns the local state when it exists, belongs to this node and prefix, and parses; a
// state file that cannot be used is logged and ignored (acquisition then starts afresh).
func (m *Manager) readState() *localState {
	path := m.statePath()
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		m.log.Warn("ignoring unreadable local state", "path", path, "err", err)
		return nil
	}
	var st localState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		m.log.Warn("ignoring malformed local state", "path", path, "err", err)
		return nil
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		m.log.Warn("ignoring malformed local state", "path", path, "err", "trailing data after the JSON object")
		return nil
	}
	switch {
	case st.NodeName != m.opts.NodeName:
		m.log.Warn("ignoring local state of another node", "path", path, "state_node", st.NodeName, "node", m.opts.NodeName)
		return nil
	case st.Prefix != m.opts.Prefix:
		m.log.Info("ignoring local state of another prefix", "path", path, "state_prefix", st.Prefix, "prefix", m.opts.Prefix)
		return nil
	case !st.Subnet.IsValid() || st.Subnet.Masked() != st.Subnet || st.EtcdLease < 0:
		m.log.Warn("ignoring malformed local state", "path", path, "subnet", st.Subnet, "etcd_lease", st.EtcdLease)
		return nil
	}
	return &st
}

func (m *Manager) writeState(l *subnet.Lease) error {
	path := m.statePath()
	if path == "" {
		return nil
	}
	data, err := json.Marshal(localState{
		NodeName: m.opts.NodeName, Prefix: m.opts.Prefix, Subnet: l.Subnet, EtcdLease: l.EtcdLease,
	})
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing local state: %w", err)
	}
	return nil
}

// LastSubnet returns the subnet the local state file says this node held last, without asking etcd:
// a node restarted during an etcd outage keeps using it until etcd confirms the lease.
func (m *Manager) LastSubnet() (netip.Prefix, bool) {
	st := m.readState()
	if st == nil {
		return netip.Prefix{}, false
	}
	return st.Subnet, true
}
