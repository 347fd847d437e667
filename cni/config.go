package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/weft-net/weft/subnet"
)

// Defaults of the plugin's own config fields.
const (
	DefaultBridge  = "weft0"
	DefaultDataDir = "/var/lib/weft/ipam"
)

// Config is the plugin's network configuration, decoded from stdin.
//
// The plugin's own fields, all optional:
//
//	"bridge":      name of the node bridge pods attach to (default "weft0")
//	"subnetFile":  absolute path of the subnet.env weftd writes (default "/run/weft/subnet.env")
//	"dataDir":     absolute path of the IPAM store; allocations go to dataDir/<network name>/
//	               (default "/var/lib/weft/ipam")
//	"mtu":         pod and bridge MTU; 0 or absent takes FLANNEL_MTU from the subnet file
//	"hairpinMode": let a pod reach itself through a service address (default true)
//
// The spec's well-known keys (cniVersion, cniVersions, name, type, args, ipMasq, ipam, dns,
// capabilities, runtimeConfig, prevResult and every cni.dev/ key) are accepted with their spec types.
// ipMasq and ipam are accepted and ignored: weftd masquerades (FLANNEL_IPMASQ) and the plugin has
// its own IPAM. Any other key is an error.
type Config struct {
	CNIVersion string
	Name       string
	// DNS is passed through to the ADD result.
	DNS types.DNS
	// PrevResult is the previous result converted to the current spec version, nil when absent.
	PrevResult *current.Result
	// ValidAttachments is cni.dev/valid-attachments (GC). It is nil when the key is absent, and an
	// empty non-nil slice when the runtime says that no attachment is valid.
	ValidAttachments []types.GCAttachment

	Bridge      string
	SubnetFile  string
	DataDir     string
	MTU         int
	HairpinMode bool
}

// DefaultConfig returns a Config with the defaults of the plugin's own fields.
func DefaultConfig() Config {
	return Config{
		Bridge:      DefaultBridge,
		SubnetFile:  subnet.DefaultEnvFile,
		DataDir:     DefaultDataDir,
		HairpinMode: true,
	}
}

// Validate checks the values of the fields it has. Every error is a *types.Error with code 7
// (invalid network config) that names the field.
func (c *Config) Validate() error {
	if c.CNIVersion == "" {
		return invalidField("cniVersion", "is missing")
	}
	if err := utils.ValidateNetworkName(c.Name); err != nil {
		return invalidField("name", fmt.Sprintf("%q: %s", c.Name, err.Msg))
	}
	if err := validLinkName(c.Bridge); err != nil {
		return invalidField("bridge", fmt.Sprintf("%q: %v", c.Bridge, err))
	}
	for _, f := range []struct{ name, path string }{{"subnetFile", c.SubnetFile}, {"dataDir", c.DataDir}} {
		if !filepath.IsAbs(f.path) || filepath.Clean(f.path) != f.path || strings.ContainsRune(f.path, 0) {
			return invalidField(f.name, fmt.Sprintf("%q: must be a clean absolute path", f.path))
		}
	}
	if c.MTU != 0 {
		if err := subnet.CheckMTU(c.MTU); err != nil {
			return invalidField("mtu", fmt.Sprintf("%v, or 0 to use the subnet file's", err))
		}
	}
	return nil
}

// validLinkName applies the kernel's rules for a network device name.
func validLinkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("is empty")
	case len(name) > 15:
		return fmt.Errorf("is longer than 15 bytes")
	case name == "." || name == "..":
		return fmt.Errorf("is not a valid name")
	case strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || r == 0 || unicode.IsSpace(r) }):
		return fmt.Errorf("contains '/', ':', NUL or whitespace")
	}
	return nil
}

func invalidField(field, problem string) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("invalid network config: field %q: %s", field, problem), "")
}

// ParseConfig decodes and validates the network configuration a runtime passes on stdin. It never
// panics; its errors are *types.Error: code 6 when the input is not a JSON object, code 7 naming the
// field for an unknown field or a bad value.
func ParseConfig(data []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "network config is not a JSON object", err.Error())
	}
	c := DefaultConfig()
	var prev json.RawMessage
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := raw[k]
		var err error
		switch k {
		case "cniVersion":
			err = decodeField(v, &c.CNIVersion)
		case "name":
			err = decodeField(v, &c.Name)
		case "dns":
			err = decodeField(v, &c.DNS)
		case "prevResult":
			prev = v
		case "bridge":
			err = decodeField(v, &c.Bridge)
		case "subnetFile":
			err = decodeField(v, &c.SubnetFile)
		case "dataDir":
			err = decodeField(v, &c.DataDir)
		case "mtu":
			err = decodeField(v, &c.MTU)
		case "hairpinMode":
			err = decodeField(v, &c.HairpinMode)
		case "type":
			err = decodeField(v, new(string))
		case "cniVersions":
			err = decodeField(v, new([]string))
		case "ipMasq":
			err = decodeField(v, new(bool))
		case "capabilities":
			err = decodeField(v, new(map[string]bool))
		case "args", "ipam", "runtimeConfig":
			err = decodeField(v, new(map[string]any))
		case "cni.dev/valid-attachments":
			err = decodeField(v, &c.ValidAttachments)
		default:
			if !strings.HasPrefix(k, "cni.dev/") {
				return nil, invalidField(k, "unknown field")
			}
		}
		if err != nil {
			return nil, invalidField(k, err.Error())
		}
	}
	// libcni also sends the list under the name an earlier spec draft used.
	if v, ok := raw["cni.dev/attachments"]; ok && c.ValidAttachments == nil {
		if err := decodeField(v, &c.ValidAttachments); err != nil {
			return nil, invalidField("cni.dev/attachments", err.Error())
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if prev != nil {
		r, err := parsePrevResult(c.CNIVersion, prev)
		if err != nil {
			return nil, invalidField("prevResult", err.Error())
		}
		c.PrevResult = r
	}
	return &c, nil
}

// decodeField decodes one field's value. JSON null leaves the destination as it is.
func decodeField(v json.RawMessage, dst any) error {
	if err := json.Unmarshal(v, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("must be a JSON %s, not %s", jsonKind(dst), te.Value)
		}
		return err
	}
	return nil
}

func jsonKind(dst any) string {
	switch dst.(type) {
	case *string:
		return "string"
	case *int:
		return "integer"
	case *bool:
		return "boolean"
	case *[]string, *[]types.GCAttachment:
		return "array"
	default:
		return "object"
	}
}

// parsePrevResult decodes a prevResult of the config's version and converts it to the current one.
// Results before 1.0.0 may omit their version, which is then the config's.
func parsePrevResult(cniVersion string, raw json.RawMessage) (*current.Result, error) {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("must be a JSON object: %w", err)
	}
	if obj == nil {
		return nil, nil
	}
	if v, _ := obj["cniVersion"].(string); v == "" {
		obj["cniVersion"] = cniVersion
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	r, err := version.NewResult(cniVersion, b)
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(r)
}
