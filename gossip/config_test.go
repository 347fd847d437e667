package gossip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/weft-net/weft/internal/gossiptest"
)

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.NodeName = "node-a"
	base.AdvertiseAddr = netip.MustParseAddr("192.0.2.10")
	if err := base.Validate(); err != nil {
		t.Fatalf("default config with a name and an advertise address: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.NodeName = "" }, "NodeName is empty"},
		{"bad name", func(c *Config) { c.NodeName = "a\tb" }, `NodeName="a\tb"`},
		{"no bind addr", func(c *Config) { c.BindAddr = netip.Addr{} }, `BindAddr="": want an IPv4 address`},
		{"ipv6 bind", func(c *Config) { c.BindAddr = netip.MustParseAddr("::1") }, "BindAddr=::1"},
		{"port zero", func(c *Config) { c.BindPort = 0 }, "BindPort=0: must be between 1 and 65535"},
		{"port big", func(c *Config) { c.BindPort = 70000 }, "BindPort=70000"},
		{"advertise unspecified", func(c *Config) { c.AdvertiseAddr = netip.IPv4Unspecified() }, "AdvertiseAddr=0.0.0.0: want a unicast IPv4 address"},
		{"no advertise", func(c *Config) { c.AdvertiseAddr = netip.Addr{} }, "AdvertiseAddr is required when BindAddr is 0.0.0.0"},
		{"long label", func(c *Config) { c.Label = strings.Repeat("l", 256) }, "Label is 256 bytes long, the limit is 255"},
		{"join no port", func(c *Config) { c.Join = []string{"192.0.2.1:7946", "192.0.2.2"} }, `Join[1]="192.0.2.2": want host:port`},
		{"join bad port", func(c *Config) { c.Join = []string{"node-b:0"} }, `Join[0]="node-b:0": port must be between 1 and 65535`},
		{"probe interval", func(c *Config) { c.ProbeInterval = 0 }, "ProbeInterval=0s: must be positive"},
		{"probe timeout", func(c *Config) { c.ProbeTimeout = time.Second }, "ProbeTimeout=1s: must be shorter than ProbeInterval=500ms"},
		{"join retry", func(c *Config) { c.JoinRetryInterval = -time.Second }, "JoinRetryInterval=-1s: must be positive"},
		{"gossip nodes", func(c *Config) { c.GossipNodes = 0 }, "GossipNodes=0: must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			}
		})
	}
}

func TestConfigAdvertise(t *testing.T) {
	c := DefaultConfig()
	c.BindAddr = netip.MustParseAddr("192.0.2.10")
	if got := c.Advertise().String(); got != "192.0.2.10:7946" {
		t.Fatalf("advertise from bind address: %s", got)
	}
	c.AdvertiseAddr = netip.MustParseAddr("198.51.100.1")
	if got := c.Advertise().String(); got != "198.51.100.1:7946" {
		t.Fatalf("advertise address: %s", got)
	}
}

func keyNames(keys [][]byte) string {
	var names []string
	for _, k := range keys {
		name := "?"
		for n, tk := range gossiptest.Keys {
			if bytes.Equal(k, tk) {
				name = n
			}
		}
		names = append(names, name)
	}
	return strings.Join(names, ",")
}

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		loose   bool
		err     string
	}{
		{"one key", gossiptest.KeyLines("A"), 0o600, "A", false, ""},
		{"primary first, comments", "# rotated 2025-08\n\n" + gossiptest.KeyLines("B,A") + "  \n", 0o600, "B,A", false, ""},
		{"aes-128", gossiptest.KeyLines("D"), 0o400, "D", false, ""},
		{"world readable", gossiptest.KeyLines("A"), 0o644, "A", true, ""},
		{"empty", "# nothing\n\n", 0o600, "", false, "no key"},
		{"not base64", gossiptest.KeyLines("A") + "not*base64\n", 0o600, "", false, "line 2: not base64"},
		{"wrong size", gossiptest.KeyLines("A") + base64.StdEncoding.EncodeToString([]byte("short")) + "\n", 0o600, "", false, "line 2: key is 5 bytes, want 16, 24 or 32"},
		{"duplicate", gossiptest.KeyLines("A,B,A"), 0o600, "", false, "line 3: duplicate key"},
		{"too large", gossiptest.KeyLines("A") + strings.Repeat("#", maxKeyFileSize), 0o600, "", false, "the limit is 65536"},
		{"CRLF line ends", strings.ReplaceAll(gossiptest.KeyLines("A,B"), "\n", "\r\n"), 0o600, "A,B", false, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.Repeat("k", i+1))
			gossiptest.WriteFile(t, path, tt.content, tt.mode)
			keys, loose, err := readKeyFile(path)
			if tt.err != "" {
				if !errors.Is(err, ErrInvalidKeyFile) || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want ErrInvalidKeyFile naming the file and %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := keyNames(keys); got != tt.want || loose != tt.loose {
				t.Fatalf("got keys %s loose %v, want %s loose %v", got, loose, tt.want, tt.loose)
			}
		})
	}
	if _, _, err := readKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, ErrInvalidKeyFile) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, _, err := readKeyFile(dir); !errors.Is(err, ErrInvalidKeyFile) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
}

func TestRotateKeyring(t *testing.T) {
	tests := []struct {
		ring, file, want string
	}{
		{"A", "A", "A"},
		{"A", "A,B", "A,B"},     // install the new key everywhere first
		{"A,B", "B,A", "B,A"},   // then switch the primary
		{"B,A", "B", "B"},       // then drop the old key
		{"A", "B", "B"},         // all at once (partitions a cluster midway)
		{"A,B,C", "A,C", "A,C"}, // a stale key before a kept one
		{"A,B,C", "C,A", "C,A"},
		{"A,B", "C,B,D", "C,B,D"},
	}
	for _, tt := range tests {
		t.Run(tt.ring+"→"+tt.file, func(t *testing.T) {
			var ring [][]byte
			for _, n := range strings.Split(tt.ring, ",") {
				ring = append(ring, gossiptest.Keys[n])
			}
			kr, err := memberlist.NewKeyring(ring, ring[0])
			if err != nil {
				t.Fatal(err)
			}
			var file [][]byte
			for _, n := range strings.Split(tt.file, ",") {
				file = append(file, gossiptest.Keys[n])
			}
			if err := rotateKeyring(kr, file); err != nil {
				t.Fatal(err)
			}
			if got := keyNames(kr.GetKeys()); got != tt.want {
				t.Fatalf("ring %s, want %s", got, tt.want)
			}
		})
	}
}

// FuzzParseKeys: any content parses to at least one valid, distinct key, or fails; what parses
// writes back, one key per line, to the same keys.
func FuzzParseKeys(f *testing.F) {
	f.Add(gossiptest.KeyLines("A"))
	f.Add("# rotated\n\n" + gossiptest.KeyLines("B,A,D"))
	f.Add("not*base64\n")
	f.Add(base64.StdEncoding.EncodeToString([]byte("short")))
	f.Fuzz(func(t *testing.T, content string) {
		keys, err := parseKeys([]byte(content))
		if err != nil {
			return
		}
		var b strings.Builder
		for _, k := range keys {
			if memberlist.ValidateKey(k) != nil {
				t.Fatalf("parsed a %d-byte key", len(k))
			}
			b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
		}
		again, err := parseKeys([]byte(b.String()))
		if err != nil || !slices.EqualFunc(again, keys, bytes.Equal) {
			t.Fatalf("written back: %v, %v; want the %d keys parsed first", again, err, len(keys))
		}
	})
}
