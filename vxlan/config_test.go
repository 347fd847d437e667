package vxlan

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{
		LocalIP:  netip.MustParseAddr("192.0.2.1"),
		Subnet:   netip.MustParsePrefix("10.244.1.0/24"),
		NodeName: "node-1",
	}
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	c.VNI = 42
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Device != "weft.42" || c.Port != 8472 || c.TxChecksumOffload != "auto" || c.ResyncInterval != 30*time.Second ||
		c.Debounce != 50*time.Millisecond || c.RouteProtocol != 87 || c.Logger == nil || c.MTU != 0 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	c = validConfig()
	c.SetDefaults()
	if c.VNI != 1 || c.Device != "weft.1" {
		t.Fatalf("VNI %d device %q, want 1 weft.1", c.VNI, c.Device)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		field  string
	}{
		{"VNI too big", func(c *Config) { c.VNI = 1 << 24 }, "VNI"},
		{"negative VNI", func(c *Config) { c.VNI = -1 }, "VNI"},
		{"port too big", func(c *Config) { c.Port = 70000 }, "Port"},
		{"MTU too small", func(c *Config) { c.MTU = 60 }, "MTU"},
		{"device name too long", func(c *Config) { c.Device = "weft-is-too-long0" }, "Device"},
		{"device name with slash", func(c *Config) { c.Device = "weft/1" }, "Device"},
		{"underlay name with space", func(c *Config) { c.UnderlayLink = "eth 0" }, "UnderlayLink"},
		{"IPv6 local IP", func(c *Config) { c.LocalIP = netip.MustParseAddr("2001:db8::1") }, "LocalIP"},
		{"multicast local IP", func(c *Config) { c.LocalIP = netip.MustParseAddr("239.1.1.1") }, "LocalIP"},
		{"loopback local IP", func(c *Config) { c.LocalIP = netip.MustParseAddr("127.0.0.1") }, "LocalIP"},
		{"missing subnet", func(c *Config) { c.Subnet = netip.Prefix{} }, "Subnet"},
		{"IPv6 subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") }, "Subnet"},
		{"subnet with host bits", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.244.1.7/24") }, "Subnet"},
		{"whole-space subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("0.0.0.0/0") }, "Subnet"},
		{"bad offload mode", func(c *Config) { c.TxChecksumOffload = "maybe" }, "TxChecksumOffload"},
		{"no stable MAC source", func(c *Config) { c.NodeName = "" }, "StateDir"},
		{"negative resync", func(c *Config) { c.ResyncInterval = -time.Second }, "ResyncInterval"},
		{"negative debounce", func(c *Config) { c.Debounce = -time.Second }, "Debounce"},
		{"kernel route protocol", func(c *Config) { c.RouteProtocol = 4 }, "RouteProtocol"},
		{"route protocol too big", func(c *Config) { c.RouteProtocol = 256 }, "RouteProtocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			c.SetDefaults()
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), ": "+tt.field+": ") {
				t.Fatalf("error %q does not name field %s", err, tt.field)
			}
		})
	}
}

func TestConfigValidateReportsEveryField(t *testing.T) {
	c := Config{VNI: -1, Port: -1, LocalIP: netip.MustParseAddr("239.1.1.1"), TxChecksumOffload: "x", ResyncInterval: -1, RouteProtocol: 1}
	err := c.Validate()
	for _, field := range []string{"Device", "VNI", "Port", "LocalIP", "Subnet", "TxChecksumOffload", "StateDir", "ResyncInterval", "RouteProtocol"} {
		if !strings.Contains(err.Error(), ": "+field+": ") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
}
