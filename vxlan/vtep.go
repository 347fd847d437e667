package vxlan

import "net"

// VTEPMAC returns the VTEP MAC the backend for cfg will use: the one persisted in cfg.StateDir, or
// else the one derived from cfg.NodeName and cfg.VNI (then persisted). The daemon publishes it in
// its lease before the backend exists, since the backend needs the leased subnet.
func VTEPMAC(cfg Config) (net.HardwareAddr, error) {
	cfg.SetDefaults()
	return vtepMAC(cfg.StateDir, cfg.Device, cfg.NodeName, cfg.VNI)
}
